// Engine feature area: engine-wide settings ZEGO pages make — extra TURN servers, the room
// scenario, hardware encoding — and the server's time.

import { pageIceServers } from "./ice-servers.js";
import { now } from "./util.js";

export class SettingsFeature {
  /**
   * TURN (or STUN) servers of your own, used next to Huddle's by the peer connections of
   * publishes and plays started afterwards. A list with a bad URL is refused (logged) and
   * changes nothing; an empty list removes yours.
   * @param {{url: string, username: string, credential: string}[]} turnServerList
   */
  setTurnServer(turnServerList) {
    const { servers, error } = pageIceServers(turnServerList);
    if (error) {
      this._logger.error("setTurnServer:", error);
      return;
    }
    this._pageIceServers = servers;
  }

  /**
   * ZEGO's room scenario; accepted before logging in. It changes nothing: Huddle's capture
   * defaults and relay are the same in every scenario. False for a value that is no scenario.
   * @param {number} scenario
   * @returns {boolean}
   */
  setRoomScenario(scenario) {
    if (typeof scenario !== "number" || !Number.isInteger(scenario) || scenario < 0) return false;
    this.options.scenario = scenario;
    return true;
  }

  /**
   * Accepted; the browser chooses hardware or software encoding itself and lets pages choose
   * neither, so it changes nothing.
   * @param {boolean} enable
   */
  enableHardwareEncoder(enable) {
    this._hardwareEncoder = !!enable;
    this._logger.warnOnce("hardware-encoder", "enableHardwareEncoder: the browser decides whether to encode in hardware; nothing changes");
  }

  /**
   * The server's time now (Unix ms), from the `ping` replies of the signaling connection, and
   * the most it may be off by (half the shortest round trip); `timestamp` 0 before the first
   * reply (before the first login).
   * @returns {{timestamp: number, maxDeviation: number}}
   */
  getNetworkTimeInfo() {
    return this._clock.info(now());
  }
}
