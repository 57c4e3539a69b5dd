#!/usr/bin/env python3
"""The relay against an independent WebRTC stack: aiortc publishes (WHIP) and plays (WHEP)
through the real `huddle` binary, and the players check the media they decode.

Cases: VP8 + Opus (two players, a player's DELETE leaves the others and the publisher, the
publisher's DELETE ends its players), H.264 + Opus, audio only (aiortc numbers Opus 96)
played with video listed first and with audio first, video only played with audio listed
first. Players assert decoded video frames of the published size showing the published
pattern, and decoded audio carrying the published 400 Hz tone.

    HUDDLE_BIN=target/debug/huddle python3 tests/aiortc/relay_test.py [part of a case's name or function]

Prints one PASS/FAIL line per case and `N passed, N failed`; exits non-zero on a failure.
HUDDLE_AIORTC_DEBUG=1 shows the server's log.
"""

import asyncio
import fractions
import hashlib
import hmac
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from array import array

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HUDDLE_BIN") or os.path.join(REPO, "target", "debug", "huddle")
DEBUG = os.environ.get("HUDDLE_AIORTC_DEBUG", "0") != "0"

WIDTH, HEIGHT = 320, 240
BRIGHT, DARK = 220, 40  # luma of the left and right halves of the published picture
TONE_HZ, RATE, SAMPLES = 400, 48000, 960  # 20 ms of a 400 Hz tone: exactly 8 periods
WAIT = 10.0  # seconds any one expectation may take


# ---- the server ----------------------------------------------------------------------------


class Server:
    """The real binary on a free port with a throwaway SQLite database and one app."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="huddle-aiortc-")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HUDDLE_DATABASE_URL": "sqlite://" + os.path.join(self.dir.name, "huddle.db"),
            "HUDDLE_DATA_DIR": self.dir.name,
            "HUDDLE_LOG": os.environ.get("HUDDLE_LOG", "warn"),
            "HUDDLE_ALLOWED_ORIGINS": "*",
        }
        created = subprocess.run(
            [BIN, "app", "create", "--name", "aiortc"], env=self.env, check=True, capture_output=True
        )
        app = json.loads(created.stdout)
        self.app_id, self.secret = str(app["appId"]), app["serverSecret"]
        self.log = open(os.path.join(self.dir.name, "server.log"), "w+")
        self.process = subprocess.Popen(
            [BIN, "serve", "--http-addr", "127.0.0.1:0", "--http-workers", "1"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=None if DEBUG else self.log,
            text=True,
        )
        for line in self.process.stdout:
            if line.startswith("huddle listening on "):
                self.base = line.split("huddle listening on ", 1)[1].strip()
                break
        else:
            raise RuntimeError(f"huddle exited before listening ({self.process.wait()}): {self.server_log()}")
        # Keep reading stdout so the server never blocks on a full pipe.
        self.drain = asyncio.get_running_loop().run_in_executor(None, lambda: [None for _ in self.process.stdout])

    def server_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        self.dir.cleanup()

    def request(self, method, url, body=b"", headers=None):
        """(status, body text, headers) of one HTTP request, run off the event loop's thread."""

        def go():
            req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=10) as response:
                    return response.status, response.read().decode(), response.headers
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode(), error.headers

        return asyncio.to_thread(go)

    async def grant(self, stream, action):
        """A media grant from the REST API (signed as the README's recipe says) and its URL."""
        path = "/v1/grants"
        body = json.dumps({"roomId": "aiortc", "userId": f"{action}-{uuid.uuid4().hex[:8]}",
                           "streamId": stream, "action": action}).encode()
        ts, nonce = str(int(time.time())), uuid.uuid4().hex
        to_sign = "\n".join([self.app_id, ts, nonce, "POST", path, hashlib.sha256(body).hexdigest()])
        signature = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Huddle-AppId": self.app_id, "X-Huddle-Timestamp": ts,
                   "X-Huddle-Nonce": nonce, "X-Huddle-Signature": signature}
        status, text, _ = await self.request("POST", self.base + path, body, headers)
        assert status == 200, f"grant: {status} {text}"
        reply = json.loads(text)
        return reply["grant"], reply["url"]

    async def delete(self, location):
        status, text, _ = await self.request("DELETE", self.base + location)
        return status, text


# ---- media aiortc sends ----------------------------------------------------------------------


def picture():
    """One yuv420p frame: a bright left half and a dark right half, neutral chroma."""
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = frame.planes[0]
    row = bytes([BRIGHT]) * (WIDTH // 2) + bytes([DARK]) * (WIDTH - WIDTH // 2)
    row += bytes(luma.line_size - WIDTH)
    luma.update(row * HEIGHT)
    for plane in frame.planes[1:]:
        plane.update(bytes([128]) * plane.buffer_size)
    return frame


class PatternTrack(VideoStreamTrack):
    """30 fps of the picture (a fresh frame each time: the encoder owns what it is given)."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = picture()
        frame.pts, frame.time_base = pts, time_base
        return frame


TONE = array("h", [int(8000 * math.sin(2 * math.pi * TONE_HZ * i / RATE)) for i in range(SAMPLES)]).tobytes()


class ToneTrack(MediaStreamTrack):
    """A 400 Hz tone in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.start, self.pts = None, 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.time()
        else:
            self.pts += SAMPLES
            await asyncio.sleep(max(0, self.start + self.pts / RATE - time.time()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(TONE)
        frame.pts, frame.sample_rate, frame.time_base = self.pts, RATE, fractions.Fraction(1, RATE)
        return frame


def codecs(kind, name):
    """aiortc's capabilities for `kind` narrowed to `name` (mime subtype) and its RTX."""
    wanted = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == f"{kind}/{name}".lower()]
    assert wanted, f"aiortc has no {kind}/{name}"
    return wanted + [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == f"{kind}/rtx"]


# ---- what a player receives ------------------------------------------------------------------


class Sink:
    """Consumes a player's remote tracks and checks every frame as it is decoded."""

    def __init__(self):
        self.video = 0
        self.audio = 0
        self.tones = 0  # audio frames that carry the tone
        self.problems = []
        self.tasks = []

    def attach(self, track):
        self.tasks.append(asyncio.ensure_future(self.consume(track)))

    async def consume(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                self.video += 1
                self.check_picture(frame)
            else:
                self.audio += 1
                if is_tone(frame):
                    self.tones += 1

    def check_picture(self, frame):
        if (frame.width, frame.height) != (WIDTH, HEIGHT):
            self.problems.append(f"a {frame.width}x{frame.height} frame, published {WIDTH}x{HEIGHT}")
            return
        luma = frame.planes[0]
        data = bytes(luma)
        left = [data[y * luma.line_size + x] for y in range(8, HEIGHT - 8, 16) for x in range(16, WIDTH // 2 - 16, 8)]
        right = [data[y * luma.line_size + x] for y in range(8, HEIGHT - 8, 16) for x in range(WIDTH // 2 + 16, WIDTH - 16, 8)]
        left, right = sum(left) / len(left), sum(right) / len(right)
        if abs(left - BRIGHT) > 30 or abs(right - DARK) > 30:
            self.problems.append(f"picture not the published one: left luma {left:.0f}, right {right:.0f}")

    def check(self):
        assert not self.problems, self.problems[:3]

    def stop(self):
        for task in self.tasks:
            task.cancel()


def is_tone(frame):
    """Whether a decoded audio frame is our 400 Hz tone: loud enough, ~16 zero crossings per 20 ms."""
    channels = len(frame.layout.channels)
    if frame.format.name != "s16" or frame.samples == 0:
        return False
    samples = array("h", bytes(frame.planes[0])[: frame.samples * channels * 2])[::channels]
    rms = (sum(s * s for s in samples) / len(samples)) ** 0.5
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    expected = 2 * TONE_HZ * frame.samples / frame.sample_rate
    return rms > 1500 and abs(crossings - expected) <= 3


# ---- peers -----------------------------------------------------------------------------------


class Peer:
    def __init__(self, pc, location, answer, sink=None):
        self.pc, self.location, self.answer, self.sink = pc, location, answer, sink

    async def close(self):
        if self.sink:
            self.sink.stop()
        await self.pc.close()


async def negotiate(server, pc, stream, action):
    await pc.setLocalDescription(await pc.createOffer())
    grant, url = await server.grant(stream, action)
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {grant}"}
    status, answer, response_headers = await server.request("POST", url, pc.localDescription.sdp.encode(), headers)
    assert status == 201, f"{action} {stream}: {status} {answer}"
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return answer, response_headers["Location"]


async def publish(server, stream, video=None, audio=True):
    """Publishes a pattern (with codec `video`, or no video) and, with `audio`, the tone in Opus."""
    pc = RTCPeerConnection()
    if video:
        pc.addTransceiver(PatternTrack(), direction="sendonly").setCodecPreferences(codecs("video", video))
    if audio:
        pc.addTransceiver(ToneTrack(), direction="sendonly").setCodecPreferences(codecs("audio", "opus"))
    answer, location = await negotiate(server, pc, stream, "publish")
    peer = Peer(pc, location, answer)
    await until(lambda: pc.connectionState == "connected", f"publisher of {stream} connects")
    return peer


async def play(server, stream, kinds=("video", "audio")):
    """Plays with one recvonly section per kind, in that order (aiortc offers all its codecs)."""
    pc = RTCPeerConnection()
    sink = Sink()
    pc.on("track", sink.attach)
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    answer, location = await negotiate(server, pc, stream, "play")
    for kind in kinds:
        assert f"m={kind} 0 " not in answer, f"the relay rejected the player's {kind} section:\n{answer}"
    return Peer(pc, location, answer, sink)


async def until(condition, what, timeout=WAIT):
    """Waits for `condition`; `what` (text, or a function giving it at the time) names it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what() if callable(what) else what}")
        await asyncio.sleep(0.05)


async def receives(player, what, video=0, audio=0):
    """Waits until the player has decoded `video` more video frames and `audio` more tone frames."""
    sink = player.sink
    video, audio = sink.video + video, sink.tones + audio
    await until(
        lambda: sink.problems or (sink.video >= video and sink.tones >= audio),
        lambda: f"{what}: {video} video / {audio} tone frames (got {sink.video} / {sink.tones} of {sink.audio} audio; "
        f"problems {sink.problems[:2]})",
    )
    sink.check()


def answer_codecs(answer, kind):
    """The media encodings of the answer's `kind` section (RTX left out)."""
    section = answer.split(f"m={kind} ", 1)[1].split("\nm=", 1)[0]
    names = {line.split(" ", 1)[1].split("/")[0].upper() for line in section.splitlines() if line.startswith("a=rtpmap:")}
    return names - {"RTX"}


# ---- cases -----------------------------------------------------------------------------------


async def vp8_two_players_and_deletes(server, peers):
    publisher = await publish(server, "vp8-cam", video="VP8")
    peers.append(publisher)
    first = await play(server, "vp8-cam", ("video", "audio"))
    peers.append(first)
    assert answer_codecs(first.answer, "video") == {"VP8"}, first.answer
    await receives(first, "first player", video=30, audio=25)
    # A second player joins (sections the other way round) and gets the same.
    second = await play(server, "vp8-cam", ("audio", "video"))
    peers.append(second)
    await receives(second, "second player", video=30, audio=25)

    # The second player leaves: it is closed, the first keeps playing, the publisher stays.
    status, text = await server.delete(second.location)
    assert status == 204, f"DELETE player: {status} {text}"
    await until(lambda: second.pc.connectionState == "closed", "the deleted player is closed")
    await receives(first, "first player after the second left", video=20, audio=20)
    assert publisher.pc.connectionState == "connected", publisher.pc.connectionState

    # The publisher leaves: its player is closed with it; the session is gone.
    status, text = await server.delete(publisher.location)
    assert status == 204, f"DELETE publisher: {status} {text}"
    await until(lambda: first.pc.connectionState == "closed", "the player is closed with its publisher")
    await until(lambda: publisher.pc.connectionState == "closed", "the publisher is closed")
    status, _ = await server.delete(publisher.location)
    assert status == 404, f"a second DELETE: {status}"


async def h264_audio_video(server, peers):
    publisher = await publish(server, "h264-cam", video="H264")
    peers.append(publisher)
    player = await play(server, "h264-cam")
    peers.append(player)
    assert answer_codecs(player.answer, "video") == {"H264"}, player.answer
    await receives(player, "H.264 player", video=30, audio=25)
    status, _ = await server.delete(player.location)
    assert status == 204
    await until(lambda: player.pc.connectionState == "closed", "the deleted player is closed")
    assert publisher.pc.connectionState == "connected", "the publisher stays when its player leaves"


async def audio_only_opus_96(server, peers):
    publisher = await publish(server, "voice", audio=True)
    peers.append(publisher)
    offer = publisher.pc.localDescription.sdp
    assert "a=rtpmap:96 opus/48000/2" in offer, f"aiortc numbers Opus 96:\n{offer}"
    # Video listed first (as browsers that do not know the stream's kinds do), then audio first.
    for kinds in (("video", "audio"), ("audio", "video")):
        player = await play(server, "voice", kinds)
        peers.append(player)
        group = next(line for line in player.answer.splitlines() if line.startswith("a=group:BUNDLE"))
        assert len(group.split()) == 3, f"both sections bundled: {group}"
        await receives(player, f"audio-only player {kinds}", audio=25)
        assert player.sink.video == 0


async def video_only_audio_listed_first(server, peers):
    publisher = await publish(server, "screen", video="VP8", audio=False)
    peers.append(publisher)
    player = await play(server, "screen", ("audio", "video"))
    peers.append(player)
    await receives(player, "video-only player", video=30)
    assert player.sink.audio == 0


CASES = [
    ("VP8 + Opus: two players, a player's DELETE, the publisher's DELETE", vp8_two_players_and_deletes),
    ("H.264 + Opus", h264_audio_video),
    ("audio only, Opus on PT 96, played video-first and audio-first", audio_only_opus_96),
    ("video only, played audio-first", video_only_audio_listed_first),
]


async def main(selected):
    if not os.access(BIN, os.X_OK):
        print(f"no huddle binary at {BIN} (build it, or set HUDDLE_BIN)", file=sys.stderr)
        return 2
    server = Server()
    passed = failed = 0
    started_all = time.monotonic()
    try:
        for name, case in CASES:
            if selected and not any(s.lower() in f"{case.__name__} {name}".lower() for s in selected):
                continue
            peers = []
            started = time.monotonic()
            try:
                await asyncio.wait_for(case(server, peers), timeout=60)
                passed += 1
                print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)
            except Exception as error:  # noqa: BLE001 - every failure is reported and counted
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {error!r}", flush=True)
                if DEBUG:
                    traceback.print_exc()
                else:
                    print(f"  server log (tail):\n{server.server_log()}", flush=True)
            finally:
                for peer in peers:
                    await peer.close()
    finally:
        server.stop()
    print(f"aiortc: {time.monotonic() - started_all:.1f} s")
    print(f"aiortc: {passed} passed, {failed} failed")
    if not passed + failed:
        print(f"no case matches {selected}: {[case.__name__ for _, case in CASES]}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
