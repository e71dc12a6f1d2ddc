"""Sans-I/O codecs of the key service packagers call: the Widevine common-encryption
key API (:mod:`.widevine_cenc`), PlayReady AcquirePackagingData and CPIX / SPEKE."""
