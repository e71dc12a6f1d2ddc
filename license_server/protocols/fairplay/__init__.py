"""FairPlay-style SPC/CKC codec (sans-I/O): TLLV framing, values, containers, business rules."""
