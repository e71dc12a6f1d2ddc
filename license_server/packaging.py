"""``license-server package``: clear MP4 in, encrypted DASH + HLS out, keys from the catalog.

Real tools do the media work; this module only drives them:

* ``ffmpeg`` (Debian package ``ffmpeg``) makes the sample clip and the
  renditions (AUDIO as AAC, SD 640x360 and HD 1280x720 as H.264, key frames
  every segment so segments are aligned across renditions);
* Shaka Packager (npm package ``shaka-packager``, which ships the binary)
  encrypts (``cenc`` AES-CTR or ``cbcs`` AES-CBC pattern) with the catalog's
  KIDs and keys and writes the PSSH boxes of every system we serve.

Output layout (a contract with the downloader and the media origin)::

    OUT/<content_id>/<scheme>/manifest.mpd
    OUT/<content_id>/<scheme>/master.m3u8
    OUT/<content_id>/<scheme>/{audio,sd,hd}/init.mp4, seg_1.m4s, seg_2.m4s, ..., playlist.m3u8
    OUT/<content_id>/<scheme>/package.json

The package is built in a sibling directory and renamed into place, so a
reader never sees half a package.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from license_server import packaging_signalling as signalling
from license_server.core.model import Track
from license_server.keyring import Keyring
from license_server.media_kids import rendition_kids

PACKAGER_ENV = "DRM_SHAKA_PACKAGER"
SCHEMES = ("cenc", "cbcs")
SEGMENT_SECONDS = 2
TOOL_TIMEOUT = 600
PROJECT_DIR = Path(__file__).resolve().parent.parent
# node_modules locations searched for the npm package, after $DRM_SHAKA_PACKAGER and PATH.
NODE_MODULES_DIRS = (Path("node_modules"), PROJECT_DIR / "tests" / "browser" / "node_modules")
CREATED_BY = "license-server package"


class ToolMissing(RuntimeError):
    """A required external tool is not installed; the message says how to install it."""


class PackagingError(RuntimeError):
    """A tool failed or the input cannot be packaged; the message says why."""


@dataclass(frozen=True)
class VideoRung:
    track: Track
    width: int
    height: int
    bitrate: str


VIDEO_RUNGS = (VideoRung(Track.SD, 640, 360, "800k"), VideoRung(Track.HD, 1280, 720, "2400k"))
AUDIO_BITRATE = "128k"
PACKAGED_TRACKS = (Track.AUDIO, Track.SD, Track.HD)


# --------------------------------------------------------------------- tools


def find_ffmpeg() -> str:
    return _which("ffmpeg", "ffmpeg not found: apt-get install ffmpeg")


def find_ffprobe() -> str:
    return _which("ffprobe", "ffprobe not found: apt-get install ffmpeg")


def _which(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(hint)
    return path


def _packager_binary_name() -> str:
    system = {"Linux": "linux", "Darwin": "osx", "Windows": "win"}.get(platform.system(), platform.system().lower())
    arch = {"x86_64": "x64", "AMD64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(),
                                                                                       platform.machine())
    return f"packager-{system}-{arch}" + (".exe" if system == "win" else "")


def packager_candidates() -> list[Path]:
    """Where Shaka Packager is looked for, in order (see :func:`find_packager`)."""
    candidates = []
    if os.environ.get(PACKAGER_ENV):
        candidates.append(Path(os.environ[PACKAGER_ENV]))
    on_path = shutil.which("packager")
    if on_path:
        candidates.append(Path(on_path))
    candidates += [d / "shaka-packager" / "bin" / _packager_binary_name() for d in NODE_MODULES_DIRS]
    return candidates


def find_packager() -> str:
    """``$DRM_SHAKA_PACKAGER``, else ``packager`` on PATH, else the binary inside
    ``node_modules/shaka-packager`` (current directory, then the project's
    ``tests/browser/``, where ``.ci/setup`` installs it)."""
    for candidate in packager_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ToolMissing(
        f"shaka-packager not found: npm install shaka-packager (or npm ci in tests/browser, or set {PACKAGER_ENV})"
    )


def _run(command: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(f"{what} took longer than {TOOL_TIMEOUT} s") from exc
    if result.returncode != 0:
        tail = " | ".join(line for line in result.stderr.strip().splitlines()[-4:])
        raise PackagingError(f"{what} failed (exit {result.returncode}): {tail}")
    return result


# -------------------------------------------------------------------- ffmpeg


def make_sample(out: Path, *, seconds: int = 10) -> Path:
    """A clear test clip: 640x360 25 fps test pattern (H.264) with a 440 Hz tone (AAC)."""
    ffmpeg = find_ffmpeg()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([ffmpeg, "-v", "error", "-y",
          "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={seconds}",
          "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
          "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50",
          "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-shortest", "-movflags", "+faststart", str(out)],
         "ffmpeg (sample)")
    return out


def probe_streams(source: Path) -> set[str]:
    """The stream types (``video``, ``audio``) in ``source``."""
    result = _run([find_ffprobe(), "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                   str(source)], f"ffprobe {source.name}")
    return {line.strip().strip(",") for line in result.stdout.splitlines() if line.strip()}


def prepare_renditions(source: Path, workdir: Path, *, segment_seconds: int = SEGMENT_SECONDS) -> dict[Track, Path]:
    """Encode the clear renditions (one ffmpeg run): AUDIO, SD and HD, key frames at segment boundaries."""
    if not source.is_file():
        raise PackagingError(f"source {source} does not exist")
    streams = probe_streams(source)
    missing = {"video", "audio"} - streams
    if missing:
        raise PackagingError(f"source {source} has no {' and no '.join(sorted(missing))} stream; "
                             "it needs one video and one audio stream")
    workdir.mkdir(parents=True, exist_ok=True)
    outputs = {Track.AUDIO: workdir / "audio.mp4"}
    command = [find_ffmpeg(), "-v", "error", "-y", "-i", str(source)]
    for rung in VIDEO_RUNGS:
        outputs[rung.track] = workdir / f"{rung.track.value.lower()}.mp4"
        scale = (f"scale={rung.width}:{rung.height}:force_original_aspect_ratio=decrease,"
                 f"pad={rung.width}:{rung.height}:(ow-iw)/2:(oh-ih)/2,setsar=1")
        command += ["-map", "0:v:0", "-an", "-vf", scale, "-c:v", "libx264", "-preset", "veryfast",
                    "-profile:v", "main", "-pix_fmt", "yuv420p", "-b:v", rung.bitrate,
                    "-force_key_frames", f"expr:gte(t,n_forced*{segment_seconds})", "-sc_threshold", "0",
                    str(outputs[rung.track])]
    command += ["-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", AUDIO_BITRATE, str(outputs[Track.AUDIO])]
    _run(command, "ffmpeg (renditions)")
    return outputs


# ------------------------------------------------------------------ packager


@dataclass(frozen=True)
class KeyServer:
    """A Widevine common-encryption key API the packager fetches its keys from (ours, or a vendor's)."""

    url: str  # e.g. http://127.0.0.1:8080/widevine/cenc/getcontentkey/widevine_test
    content_id: str
    signer: str = "widevine_test"
    aes_key: str = "1ae8ccd0e7985cc0b6203a55855a1034afc252980e970ca90e5202689f947ab9"  # public tutorial key
    aes_iv: str = "d58ce954203b7c9a9a9d467f59839249"
    crypto_period: int | None = None  # seconds per key (key rotation), None for one key per track

    def flags(self) -> list[str]:
        flags = ["--enable_widevine_encryption", "--key_server_url", self.url,
                 "--content_id", self.content_id.encode("utf-8").hex(), "--signer", self.signer,
                 "--aes_signing_key", self.aes_key, "--aes_signing_iv", self.aes_iv]
        return flags + (["--crypto_period_duration", str(self.crypto_period)] if self.crypto_period else [])


def packager_command(inputs: dict[Track, Path], *, keys: dict[Track, tuple[bytes, bytes]] | None,
                     scheme: str, segment_seconds: int = SEGMENT_SECONDS,
                     key_server: KeyServer | None = None) -> list[str]:
    """Shaka Packager arguments; paths relative to the output directory (the working directory)."""
    command = [find_packager()]
    encrypted = keys is not None or key_server is not None
    for track, source in inputs.items():
        name = track.value.lower()
        descriptor = [f"in={source}", f"stream={'audio' if track is Track.AUDIO else 'video'}",
                      f"init_segment={name}/init.mp4", f"segment_template={name}/seg_$Number$.m4s",
                      f"playlist_name={name}/playlist.m3u8"]
        if track is Track.AUDIO:
            descriptor += ["hls_group_id=audio", "hls_name=AUDIO"]
        if encrypted:
            descriptor.append(f"drm_label={track.value}")
        command.append(",".join(descriptor))
    if encrypted:
        systems = ["Widevine", "PlayReady", "CommonSystem"] + (["FairPlay"] if scheme == "cbcs" else [])
        if key_server is not None:
            command += key_server.flags()
        else:
            assert keys is not None
            command += ["--enable_raw_key_encryption",
                        "--keys", ",".join(f"label={track.value}:key_id={kid.hex()}:key={key.hex()}"
                                           for track, (kid, key) in keys.items())]
        command += ["--protection_scheme", scheme, "--protection_systems", ",".join(systems), "--clear_lead", "0"]
        if scheme == "cbcs":
            command += ["--hls_key_uri", signalling.FAIRPLAY_KEY_URI_PLACEHOLDER]
    command += ["--segment_duration", str(segment_seconds), "--generate_static_live_mpd",
                "--mpd_output", "manifest.mpd", "--hls_master_playlist_output", "master.m3u8"]
    return command


def run_packager(inputs: dict[Track, Path], out_dir: Path, *, keys: dict[Track, tuple[bytes, bytes]] | None,
                 scheme: str = "cenc", segment_seconds: int = SEGMENT_SECONDS,
                 key_server: KeyServer | None = None) -> None:
    """Package ``inputs`` into ``out_dir`` (clear when ``keys`` is None)."""
    if scheme not in SCHEMES:
        raise PackagingError(f"unknown scheme {scheme!r} (use cenc or cbcs)")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Stream descriptors are comma-separated, so give the packager paths without commas.
    local = {track: Path(os.path.relpath(path.resolve(), out_dir.resolve())) for track, path in inputs.items()}
    if any("," in str(p) for p in local.values()):
        raise PackagingError("rendition paths must not contain commas")
    _run(packager_command(local, keys=keys, scheme=scheme, segment_seconds=segment_seconds, key_server=key_server),
         "shaka-packager", cwd=out_dir)


# ------------------------------------------------------------------- package


@dataclass(frozen=True)
class PackageResult:
    directory: Path
    manifest: dict


def title_keys(keyring: Keyring, content_id: str) -> dict[Track, tuple[bytes, bytes]]:
    """The (KID, key) of each packaged track of ``content_id``, from the catalog."""
    title = keyring.catalog.title(content_id)
    if title is None:
        known = ", ".join(sorted(keyring.catalog.titles))
        raise PackagingError(f"content {content_id!r} is not in the catalog (known: {known})")
    keys = {entry.track: (entry.kid, entry.key) for entry in title.tracks if entry.track in PACKAGED_TRACKS}
    missing = [t.value for t in PACKAGED_TRACKS if t not in keys]
    if missing:
        raise PackagingError(f"content {content_id!r} has no {', '.join(missing)} key in the catalog")
    return {track: keys[track] for track in PACKAGED_TRACKS}


def package(source: Path, *, content_id: str, out: Path, scheme: str, keyring: Keyring | None,
            license_url: str | None = None, segment_seconds: int = SEGMENT_SECONDS,
            key_server: KeyServer | None = None) -> PackageResult:
    """Package ``source`` for ``content_id`` into ``out/<content_id>/<scheme>/``: with the catalog keys of
    ``keyring``, or with the keys the packager fetches from ``key_server`` (then ``keyring`` is unused)."""
    if scheme not in SCHEMES:
        raise PackagingError(f"unknown scheme {scheme!r} (use cenc or cbcs)")
    keys: dict[Track, tuple[bytes, bytes]] | None = None
    if key_server is None:
        if keyring is None:
            raise PackagingError("package with catalog keys (a keyring) or through a key server")
        keys = title_keys(keyring, content_id)
    elif key_server.content_id != content_id:
        raise PackagingError("the key server request must name the packaged content id")
    find_ffmpeg(), find_ffprobe(), find_packager()  # fail fast, before any work
    final = out / content_id / scheme
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{scheme}.partial-", dir=final.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the package is meant to be served
    try:
        work = staging / ".work"
        inputs = prepare_renditions(source, work, segment_seconds=segment_seconds)
        run_packager(inputs, staging, keys=keys, scheme=scheme, segment_seconds=segment_seconds, key_server=key_server)
        shutil.rmtree(work)
        kids = {track: [kid] for track, (kid, _) in keys.items()} if keys is not None else None
        manifest = _finish(staging, content_id=content_id, scheme=scheme, kids=kids, license_url=license_url)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PackageResult(final, manifest)


def _finish(directory: Path, *, content_id: str, scheme: str, kids: dict[Track, list[bytes]] | None,
            license_url: str | None) -> dict:
    """Add the signalling the packager does not write, then describe the package in package.json.
    ``kids`` None: read each rendition's KIDs (one per crypto period when rotating) from the output."""
    mpd_path = directory / "manifest.mpd"
    mpd = signalling.add_clearkey_signalling(mpd_path.read_text(encoding="utf-8"), license_url)
    mpd_path.write_text(mpd, encoding="utf-8")
    facts = signalling.read_renditions(mpd)
    if kids is None:
        kids = {}
        for track in PACKAGED_TRACKS:
            fact = facts.get(track.value.lower())
            if fact is not None and (directory / fact.init).is_file():
                segments = [(directory / f).read_bytes() for f in fact.segments if (directory / f).is_file()]
                found = rendition_kids((directory / fact.init).read_bytes(), segments)
                if not found:
                    raise PackagingError(f"the packager wrote no key id for the {track.value} rendition")
                kids[track] = found
    for track, (kid, *_) in kids.items():  # rotation: the HLS key lines name the first period's KID
        playlist = directory / track.value.lower() / "playlist.m3u8"
        text = playlist.read_text(encoding="utf-8")
        if scheme == "cbcs":
            text = signalling.set_fairplay_key_uri(text, signalling.fairplay_key_uri(kid))
        try:
            text = signalling.add_clearkey_key_line(text, kid)
        except ValueError as exc:
            raise PackagingError(f"{playlist.relative_to(directory)}: {exc}") from exc
        playlist.write_text(text, encoding="utf-8")
    renditions = []
    for track, (kid, *rotated) in kids.items():
        fact = facts.get(track.value.lower())
        if fact is None:
            raise PackagingError(f"the packager wrote no {track.value} rendition")
        files = [fact.init, *fact.segments]
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise PackagingError(f"the packager did not write {', '.join(missing[:3])}")
        renditions.append({
            "track": track.value, "kid": kid.hex(), "bandwidth": fact.bandwidth, "duration": fact.duration,
            "init": fact.init, "segments": list(fact.segments),
            "sizes": {f: (directory / f).stat().st_size for f in files},
            **({"kids": [k.hex() for k in (kid, *rotated)]} if rotated else {}),  # key rotation: one per period
        })
    manifest = {"content_id": content_id, "scheme": scheme, "created_by": CREATED_BY, "renditions": renditions}
    (directory / "package.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
