// The tutorial's flow, typed against sdk/huddle-express.d.ts (compiled with --strict by
// types.test.mjs, never run): a page written for ZEGO Express type-checks unchanged.
import { ZegoExpressEngine, HuddleExpressEngine, SdkError, ZegoStreamView } from "../../../sdk/huddle-express";
import type { ZegoPlayStats, ZegoPublishStats, ZegoStreamList, ZegoUser } from "../../../sdk/huddle-express";

const zg = new ZegoExpressEngine(1, "ws://localhost:8080/ws");
const same: HuddleExpressEngine = zg;
zg.setDebugVerbose(false);

zg.on("roomStateChanged", (roomID: string, reason, errorCode: number, extendedData: string) => {
  if (reason == "LOGINED" || reason == "RECONNECT_FAILED") console.log(roomID, errorCode, extendedData);
});
zg.on("roomUserUpdate", (roomID, updateType, userList: ZegoUser[]) => {
  for (const user of userList) console.log(user.userID, updateType, roomID);
});
zg.on("roomStreamUpdate", async (roomID, updateType, streamList: ZegoStreamList[], extendedData) => {
  if (updateType == "ADD") {
    const remoteStream: MediaStream = await zg.startPlayingStream(streamList[0].streamID);
    const remoteView: ZegoStreamView = zg.createRemoteStreamView(remoteStream);
    remoteView.play("remote-video", { enableAutoplayDialog: true });
  } else if (updateType == "DELETE") {
    zg.stopPlayingStream(streamList[0].streamID);
  }
});
zg.on("publisherStateUpdate", (result) => console.log(result.state, result.streamID, result.errorCode, result.extendedData));
zg.on("playerStateUpdate", (result) => console.log(result.state === "PLAYING"));
zg.on("publishQualityUpdate", (streamID: string, stats: ZegoPublishStats) => console.log(stats.video.videoBitrate));
zg.on("playQualityUpdate", (streamID: string, stats: ZegoPlayStats) => console.log(stats.video.videoFramesDecoded));
zg.on("IMRecvBroadcastMessage", (roomID, chatData) => console.log(chatData[0].message, chatData[0].fromUser.userID));
zg.on("IMRecvBarrageMessage", (roomID, messageInfo) => console.log(messageInfo[0].messageID));
zg.on("IMRecvCustomCommand", (roomID, fromUser, command: string) => console.log(fromUser.userID, command));
zg.on("roomExtraInfoUpdate", (roomID, list) => console.log(list[0].key, list[0].value));
zg.on("streamExtraInfoUpdate", (roomID, list) => console.log(list[0].extraInfo));
zg.on("roomOnlineUserCountUpdate", (roomID, count: number) => console.log(count));
zg.on("tokenWillExpire", (roomID: string) => zg.renewToken("new-token", roomID));

async function main(): Promise<void> {
  const requirements = await zg.checkSystemRequirements();
  if (!requirements.webRTC || !requirements.videoCodec?.VP8) return;
  const result: boolean = await zg.loginRoom("123", "token", { userID: "user1", userName: "user1" }, { userUpdate: true });
  if (result == true) {
    const localStream = await zg.createStream();
    zg.createLocalStreamView(localStream).play("local-video", { enableAutoplayDialog: true });
    const started: boolean = zg.startPublishingStream(new Date().getTime().toString(), localStream);
    zg.mutePublishStreamAudio(localStream, true);
    zg.mutePublishStreamVideo(localStream, false);
    const screen = await zg.createStream({ screen: { videoQuality: 2, frameRate: 15 } });
    const custom = await zg.createStream({ custom: { source: screen, bitrate: 1200 } });
    const camera = await zg.createStream({ camera: { audio: true, video: true, width: 640, height: 480, frameRate: 15, bitrate: 800 } });
    const sent = await zg.sendBroadcastMessage("123", "hello");
    if (sent.errorCode !== 0 && sent.errorCode !== SdkError.NOT_LOGGED_IN) console.log(sent.extendedData);
    await zg.sendCustomCommand("123", "raise-hand", ["user2"]);
    await zg.setRoomExtraInfo("123", "topic", "standup");
    await zg.setStreamExtraInfo("s1", "muted");
    zg.stopPublishingStream("s1");
    zg.destroyStream(custom);
    zg.destroyStream(camera);
    console.log(started, same);
  }
  await zg.logoutRoom("123");
  zg.destroyEngine();
}
main();
