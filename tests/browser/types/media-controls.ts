// ZEGO-typed calls of the media controls, reports, servers and not-offered add-ons, typed
// against sdk/huddle-express.d.ts (compiled with --strict by types.test.mjs, never run).
import { ZegoExpressEngine } from "../../../sdk/huddle-express";
import type { ExceptionData, QualityGrade, ZegoCapabilityDetection, ZegoSoundLevelInfo } from "../../../sdk/huddle-express";

const zg = new ZegoExpressEngine(1, ["wss://a.example.com/ws", "wss://b.example.com/ws"], { scenario: 3 });
zg.setLogConfig({ logLevel: "report", remoteLogLevel: "disable", logURL: "" });

zg.on("roomStateUpdate", (roomID: string, state, errorCode: number, extendedData: string) => {
  if (state === "DISCONNECTED") console.log(roomID, errorCode, extendedData);
});
zg.on("remoteMicStatusUpdate", (streamID: string, status: "OPEN" | "MUTE") => console.log(streamID, status));
zg.on("remoteCameraStatusUpdate", (streamID: string, status) => console.log(streamID, status === "MUTE"));
zg.on("soundLevelUpdate", (list: ZegoSoundLevelInfo[]) => list.forEach((s) => console.log(s.streamID, s.soundLevel, s.type)));
zg.on("networkQuality", (userID: string, up: QualityGrade, down: QualityGrade) => console.log(userID, up, down));
zg.on("exceptionUpdate", (streamID: string, data: ExceptionData) => console.log(streamID, data.code, data.message));
zg.on("playerRecvSEI", (streamID: string, data: Uint8Array) => console.log(streamID, data.length));

async function controls(local: MediaStream, streamID: string, video: HTMLVideoElement): Promise<void> {
  zg.setSoundLevelDelegate(true, 1000);
  const muted: boolean = await zg.mutePlayStreamVideo(streamID, true);
  await zg.mutePlayStreamAudio(streamID, !muted);
  await zg.muteAllPlayAudioStreams(false);
  await zg.muteAllPlayVideoStreams(false);
  zg.mutePublishStreamVideo(local, true, true);
  zg.mutePublishStreamAudio(local, false);
  const ok: boolean = await zg.useAudioOutputDevice(video, "default");
  const quality = zg.getPublishingStreamQuality(streamID);
  if (quality && ok) console.log(quality.video.frameWidth);
  const vp8: ZegoCapabilityDetection = await zg.checkSystemRequirements("VP8", 1);
  if (vp8.videoCodec?.VP8) console.log(vp8.result);

  const view = zg.createRemoteStreamView(local);
  view.on("canPlayAudio", () => view.stopVideo());
  view.playVideo("remote-video", { enableAutoplayDialog: false });
  view.playAudio({ enableAutoplayDialog: true });
  view.stopAudio();

  // Dual streams (simulcast).
  zg.enableDualStream(local);
  zg.setLowStreamParameter(local, { width: 320, height: 180, frameRate: 15, bitRate: 200 });
  const low: boolean = await zg.setPlayStreamVideoType(streamID, 0);
  await zg.startPlayingStream(streamID, { streamType: 2 });

  // Not offered: typed as ZEGO declares them, answering NOT_OFFERED.
  const denoise = await zg.enableAiDenoise(local, true);
  if (denoise.errorCode !== 0) console.log(denoise.extendedData);
  await zg.addPublishCdnUrl(streamID, "rtmp://cdn.example.com/live");
  await zg.startMixerTask({ taskID: "t", inputList: [], outputList: [] });
  const sent: boolean = zg.sendSEI(streamID, new Uint8Array([1]));
  console.log(low, sent);

  // The rest of ZEGO's surface, typed as ZEGO declares it.
  ZegoExpressEngine.presetLogConfig({ logLevel: "warn" });
  ZegoExpressEngine.use({});
  ZegoExpressEngine.setGeoFence(1, [2]);
  ZegoExpressEngine.setEngineOptions({});
  ZegoExpressEngine.setCloudProxyConfig([], "", false);
  ZegoExpressEngine.setLocalProxyConfig({}, false);
  const switched: boolean = await zg.switchRoom("room-1", "room-2", { token: "t", isUserStatusNotify: true });
  zg.setTurnServer([{ url: "turn:turn.example.com:3478", username: "u", credential: "c" }]);
  const scenario: boolean = zg.setRoomScenario(3);
  zg.enableHardwareEncoder(true);
  const time: { timestamp: number; maxDeviation: number } = zg.getNetworkTimeInfo();
  await zg.setAudioFrameCallback(streamID, (frame) => console.log(frame.channels[0].length, frame.sampleRate), { frameSize: 1024, bitDepth: 16 });
  await zg.setCaptureAudioFrameCallback(local, null);
  const picture: string = view.takeStreamSnapshot({ imageType: "jpeg", quality: 0.8 });
  zg.on("playerVideoTrackUpdate", (id: string, track: MediaStreamTrack) => console.log(id, track.kind));
  zg.on("playerAudioTrackUpdate", (id, track) => console.log(id, track.id));
  const multi: boolean = zg.enableMultiRoom(true);
  await zg.sendTransparentMessage("room-2", { sendMode: 0, sendType: 0, content: new Uint8Array([1]), recvUserList: [] });
  const dummy: boolean = await zg.setDummyCaptureImagePath("https://example.com/away.png", local);
  console.log(switched, scenario, time.timestamp, picture, multi, dummy);
}
void controls;
