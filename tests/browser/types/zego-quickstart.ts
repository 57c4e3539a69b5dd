// ZEGO's current quick-start flow (createZegoStream, ZegoLocalStream.playVideo,
// startPublishingStream with the ZegoLocalStream, startPlayingStream, a remote view) and the
// capture and device calls, typed against sdk/huddle-express.d.ts (compiled with --strict by
// types.test.mjs, never run): the calls as ZEGO's own declarations type them.
import { ZegoExpressEngine, ZegoLocalStream, ZegoStreamUpdateType } from "../../../sdk/huddle-express";
import type { ZegoStreamOptions, ZegoServerResponse, ZegoStreamList, ZegoLocalStreamEvent } from "../../../sdk/huddle-express";

const zg = new ZegoExpressEngine(1, "ws://localhost:8080/ws");

zg.on("roomStreamUpdate", async (roomID: string, updateType, streamList: ZegoStreamList[], extendedData) => {
  if (updateType == "ADD") {
    const streamID = streamList[0].streamID;
    const remoteStream = await zg.startPlayingStream(streamID);
    const remoteView = zg.createRemoteStreamView(remoteStream);
    remoteView.play("remote-video", { enableAutoplayDialog: true });
  } else if (updateType == "DELETE") {
    zg.stopPlayingStream(streamList[0].streamID);
  }
});
zg.on("capturedSoundLevelUpdate", (soundLevel: number) => console.log(soundLevel));
zg.on("videoDeviceStateChanged", (updateType, deviceInfo) => console.log(updateType === "ADD", deviceInfo.deviceID));
zg.on("audioDeviceStateChanged", (updateType, deviceType, deviceInfo) => console.log(deviceType === "Input", deviceInfo.deviceName));
zg.on("deviceError", (errorCode: number, deviceName: string) => console.log(errorCode, deviceName));

async function main(): Promise<void> {
  const result = await zg.loginRoom("123", "token", { userID: "user1", userName: "user1" }, { userUpdate: true });
  if (result != true) return;
  const localStream: ZegoLocalStream = await zg.createZegoStream();
  const localVideo = document.querySelector("#local-video") as HTMLElement;
  localStream.playVideo(localVideo);
  localStream.playVideo(localVideo, { mirror: true, objectFit: "cover", enableAutoplayDialog: true });
  const published: boolean = zg.startPublishingStream(new Date().getTime().toString(), localStream);

  const options: ZegoStreamOptions = {
    camera: { video: { input: "cam", quality: 4, width: 640, height: { ideal: 480 }, frameRate: 15, facingMode: "user" }, audio: { ANS: true, AEC: true, channelCount: 1 } },
    videoBitrate: 800,
    audioBitrate: 48,
  };
  const tuned = await zg.createZegoStream(options);
  const screen = await zg.createZegoStream({ screen: { video: { quality: 2 }, audio: true } });
  const custom = await zg.createZegoStream({ custom: { video: { source: tuned.stream as MediaStream }, audio: { source: document.createElement("audio") } } });

  const onChanged: ZegoLocalStreamEvent["videoTrackChanged"] = (track) => console.log(track.kind);
  tuned.on("videoTrackChanged", onChanged);
  tuned.on("autoplayFailed", (player: HTMLMediaElement) => player.play());
  tuned.off("videoTrackChanged");
  const captured: ZegoServerResponse = await tuned.startCaptureCamera({ quality: 3 });
  await tuned.startCaptureMicrophone({ input: "mic" });
  await tuned.startCaptureCameraAndMicrophone({ quality: 2 }, { AGC: false });
  await tuned.startCaptureScreen({ frameRate: 10 });
  await tuned.startCaptureScreenWithAudio({ quality: 1 }, { ANS: true });
  await tuned.startCaptureCustomVideo({ source: screen.stream as MediaStream });
  await tuned.startCaptureCustomAudio({ source: document.createElement("video") });
  await tuned.startCaptureCustomVideoAndAudio({ source: document.createElement("video") }, { source: document.createElement("video") });
  const stoppedVideo: boolean = await tuned.stopCaptureVideo();
  const stoppedAudio: boolean = await tuned.stopCaptureAudio();
  tuned.playAudio({ enableAutoplayDialog: false });
  tuned.playCaptureAudio();
  tuned.playCaptureVideo(localVideo, { mirror: false });
  const snapshot: string = tuned.takeStreamSnapshot({ imageType: "jpeg", quality: 0.8 });
  await tuned.resumeVideo();
  await tuned.resumeAudio();
  const volumeSet: boolean = tuned.setVolume(50);
  await tuned.useAudioOutputDevice("speaker");
  tuned.stopVideo();
  tuned.stopAudio();
  tuned.stopPlayCaptureVideo();
  tuned.stopPlayCaptureAudio();
  const surface: string = screen.getScreenDisplaySurface();
  const tracks: MediaStreamTrack[] = [...tuned.getTracks(), ...tuned.getVideoTracks(), ...tuned.getAudioTracks()];
  const info = [tuned.active, tuned.id, tuned.videoDeviceId, tuned.audioDeviceId, tuned.videoCaptureStream, tuned.audioCaptureStream];

  const updated: ZegoServerResponse = await zg.updatePublishingStream(tuned, ZegoStreamUpdateType.video);
  await zg.updatePublishingStream(tuned, 2);
  const mediaStream = await zg.createStream();
  await zg.addTrack(mediaStream, tracks[0]);
  await zg.removeTrack(mediaStream, tracks[0]);
  const videoActive: boolean = await zg.checkVideoTrackIsActive(localStream);
  const audioActive: boolean = await zg.checkAudioTrackIsActive(mediaStream);
  const cameraOn: boolean = await zg.enableVideoCaptureDevice(localStream, false);
  const muted: boolean = zg.muteMicrophone(true);
  const isMuted: boolean = zg.isMicrophoneMuted();
  await zg.useVideoDevice(localStream, "cam2");
  await zg.useAudioDevice(mediaStream, "mic2");
  await zg.useFrontCamera(localStream, true);
  zg.enableAutoSwitchDevice({ camera: true, microphone: true });
  await zg.setVideoConfig(localStream, { width: 320, height: 240, frameRate: 15, maxBitrate: 300 });
  await zg.setAudioConfig(localStream, { AEC: false, ANS: true, AGC: true });
  await zg.setCaptureVolume(localStream, 0);
  zg.setSoundLevelDelegate(true, 200);
  zg.mutePublishStreamVideo(localStream, true);
  zg.mutePublishStreamAudio(localStream, false);
  zg.createLocalStreamView(localStream).play("local-video");
  zg.destroyStream(localStream);
  zg.destroyStream(mediaStream);
  console.log(published, captured, stoppedVideo, stoppedAudio, snapshot, volumeSet, surface, info, updated, videoActive, audioActive, cameraOn, muted, isMuted, custom);
}

main();
