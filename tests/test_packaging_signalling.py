"""Pure-text tests of the MPD and HLS signalling ``license-server package`` writes
(no tools needed: the inputs are Shaka Packager's output in miniature)."""

from __future__ import annotations

import base64

import pytest

from license_server import packaging_signalling as signalling

KID = bytes.fromhex("9d58c641af0241d95c2a2fd59c7fea28")
LICENSE_URL = "http://127.0.0.1:8080/clearkey/license"
COMMON = "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
DASHIF = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
WIDEVINE = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"

MPD = f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" type="static">
  <Period id="0">
    <AdaptationSet id="0" contentType="video">
      <ContentProtection value="cenc" schemeIdUri="urn:mpeg:dash:mp4protection:2011"
                         cenc:default_KID="9d58c641-af02-41d9-5c2a-2fd59c7fea28" />
      <ContentProtection schemeIdUri="{COMMON}"><cenc:pssh>AAAA</cenc:pssh></ContentProtection>
      <ContentProtection schemeIdUri="{WIDEVINE}"><cenc:pssh>BBBB</cenc:pssh></ContentProtection>
      <Representation id="0" bandwidth="1" />
    </AdaptationSet>
    <AdaptationSet id="1" contentType="text"><Representation id="1" bandwidth="1" /></AdaptationSet>
  </Period>
</MPD>
"""


def protections(mpd: str) -> list[str]:
    from defusedxml import ElementTree

    root = ElementTree.fromstring(mpd)
    return [p.get("schemeIdUri") for p in root.iter("{urn:mpeg:dash:schema:mpd:2011}ContentProtection")]


def test_the_dashif_element_replaces_the_common_system_one_in_its_place():
    mpd = signalling.add_clearkey_signalling(MPD, LICENSE_URL)
    assert protections(mpd) == ["urn:mpeg:dash:mp4protection:2011", DASHIF, WIDEVINE]
    assert "1077efec" not in mpd
    assert f"<dashif:Laurl>{LICENSE_URL}</dashif:Laurl>" in mpd
    assert f'<clearkey:Laurl Lic_type="EME-1.0">{LICENSE_URL}</clearkey:Laurl>' in mpd
    # dash.js passes a cenc:pssh of a Clear Key element to generateRequest("keyids"): it must have none.
    dashif = mpd[mpd.index(DASHIF):mpd.index(WIDEVINE)]
    assert "pssh" not in dashif
    assert 'cenc:default_KID="9d58c641-af02-41d9-5c2a-2fd59c7fea28"' in mpd  # dash.js builds keyids from it


def test_without_a_license_url_there_is_no_laurl_and_clear_adaptation_sets_stay_clear():
    mpd = signalling.add_clearkey_signalling(MPD)
    assert "Laurl" not in mpd and protections(mpd).count(DASHIF) == 1


def test_signalling_twice_changes_nothing():
    once = signalling.add_clearkey_signalling(MPD, LICENSE_URL)
    assert signalling.add_clearkey_signalling(once, LICENSE_URL) == once


CENC_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MAP:URI="init.mp4"
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,nVjGQa8CQdlcKi/VnH/qKA==",KEYFORMAT="identity"
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,AAAA",KEYID=0x9d58c641af0241d95c2a2fd59c7fea28,\
KEYFORMATVERSIONS="1",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
#EXTINF:2.000,
seg_1.m4s
#EXT-X-ENDLIST
"""


def test_hls_clear_key_line_names_the_kid_where_players_read_it():
    line = signalling.clearkey_key_line(KID, "SAMPLE-AES")
    assert line == ('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:text/plain;base64,'
                    f'{base64.b64encode(KID).decode()}",KEYID=0x{KID.hex()},KEYFORMATVERSIONS="1",'
                    'KEYFORMAT="org.w3.clearkey"')


def test_hls_gets_the_clear_key_line_first_and_loses_the_identity_line():
    text = signalling.add_clearkey_key_line(CENC_PLAYLIST, KID)
    keys = [line for line in text.splitlines() if line.startswith("#EXT-X-KEY")]
    assert keys[0] == signalling.clearkey_key_line(KID, "SAMPLE-AES-CTR")
    assert len(keys) == 2 and "edef8ba9" in keys[1]
    assert "identity" not in text
    assert text.splitlines()[-3:] == ["#EXTINF:2.000,", "seg_1.m4s", "#EXT-X-ENDLIST"]
    assert signalling.add_clearkey_key_line(text, KID) == text


def test_a_playlist_without_key_lines_is_refused():
    with pytest.raises(ValueError, match="no encrypted key line"):
        signalling.add_clearkey_key_line("#EXTM3U\n#EXTINF:2.000,\nseg_1.m4s\n", KID)


def test_cbcs_keeps_fairplay_and_gets_clear_key():
    playlist = ('#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://drm-emulator-key-uri",KEYFORMATVERSIONS="1",'
                'KEYFORMAT="com.apple.streamingkeydelivery"\nseg_1.m4s\n')
    text = signalling.add_clearkey_key_line(signalling.set_fairplay_key_uri(playlist, "skd://" + KID.hex()), KID)
    keys = [line for line in text.splitlines() if line.startswith("#EXT-X-KEY")]
    assert keys == [signalling.clearkey_key_line(KID, "SAMPLE-AES"),
                    (f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://{KID.hex()}",KEYFORMATVERSIONS="1",'
                     'KEYFORMAT="com.apple.streamingkeydelivery"')]
