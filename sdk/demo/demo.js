// Huddle demo call page. Plain JavaScript on top of the Huddle browser SDK
// (window.ZegoExpressEngine, loaded by /sdk/huddle-express.js); no framework, no build.
//
// Flow: lobby → GET /dev/token (dev mode) → new ZegoExpressEngine(appId, ws URL) → loginRoom →
// createStream + startPublishingStream → play every stream roomStreamUpdate announces.
(() => {
  'use strict';

  // Identifier rules of the Huddle server (src/ids.rs).
  const ROOM_ID_RE = /^[A-Za-z0-9_.~-]{1,128}$/;
  const USER_ID_RE = /^[A-Za-z0-9_.~@:-]{1,64}$/;
  const NAME_MAX = 64;
  const CHAT_MAX = 500;

  const NAME_KEY = 'huddle.demo.userName';
  // Per tab (sessionStorage): a reload keeps its user id, so the server replaces the old session
  // at once; a second tab gets its own id. A duplicated tab keeps it, and one of the two is kicked out.
  const SUFFIX_KEY = 'huddle.demo.userSuffix';

  // roomStateChanged reason → badge text and tone.
  const ROOM_STATES = {
    LOGINING: ['Connecting…', 'pending'],
    LOGINED: ['Connected', 'ok'],
    LOGIN_FAILED: ['Disconnected', 'bad'],
    RECONNECTING: ['Reconnecting…', 'warn'],
    RECONNECTED: ['Reconnected', 'ok'],
    RECONNECT_FAILED: ['Disconnected', 'bad'],
    KICKOUT: ['Kicked out', 'bad'],
    LOGOUT: ['Disconnected', 'idle'],
    LOGOUT_FAILED: ['Disconnected', 'bad'],
  };

  // The business server's reason for a kick or close (roomStateChanged's extendedData).
  function serverReason(extendedData) {
    try {
      const parsed = JSON.parse(extendedData || '{}');
      return typeof parsed.custom_kickout_message === 'string' ? parsed.custom_kickout_message : '';
    } catch {
      return '';
    }
  }

  const $ = (id) => document.getElementById(id);
  const ui = {
    lobby: $('lobby'), call: $('call'),
    joinForm: $('join-form'), room: $('room-id'), name: $('user-name'), newRoom: $('new-room'),
    join: $('join'), formError: $('form-error'), formErrorText: $('form-error-text'),
    roomName: $('room-name'), roomMini: $('room-mini'), copyLink: $('copy-link'), badge: $('connection-state'),
    grid: $('grid'), ended: $('ended'), endedTitle: $('ended-title'), endedText: $('ended-text'),
    rejoin: $('rejoin'), backToLobby: $('back-to-lobby'),
    participants: $('participants'), peopleCount: $('people-count'),
    messages: $('messages'), chatEmpty: $('chat-empty'), chatForm: $('chat-form'), chatInput: $('chat-input'),
    mic: $('toggle-mic'), cam: $('toggle-cam'), leave: $('leave'), toggleSide: $('toggle-side'), unread: $('unread'),
    clock: $('clock'), toasts: $('toasts'),
  };

  /**
   * The current call, or null in the lobby. Every SDK callback checks that its session is still
   * the current one, so that late events of a call already left change nothing.
   */
  let session = null;
  let mediaSeq = 0;

  // ---------------------------------------------------------------- small helpers

  const storage = {
    get(store, key) { try { return store.getItem(key); } catch { return null; } },
    set(store, key, value) { try { store.setItem(key, value); } catch { /* private mode */ } },
  };

  function randomChars(n) {
    const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
    const bytes = crypto.getRandomValues(new Uint8Array(n));
    return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
  }

  function randomRoomId() {
    const adjectives = ['calm', 'bright', 'quiet', 'swift', 'brave', 'gentle', 'lucky', 'sunny', 'misty', 'bold',
      'clever', 'cosy', 'happy', 'mellow', 'noble', 'witty'];
    const nouns = ['otter', 'falcon', 'maple', 'harbor', 'comet', 'willow', 'badger', 'meadow', 'lagoon', 'pine',
      'heron', 'canyon', 'ember', 'fjord', 'lynx', 'orchid'];
    const pick = (list) => list[crypto.getRandomValues(new Uint32Array(1))[0] % list.length];
    return `${pick(adjectives)}-${pick(nouns)}-${10 + (crypto.getRandomValues(new Uint8Array(1))[0] % 90)}`;
  }

  /** A user id from the display name: "Zoë O'Neil" → "zoe-o-neil-k3x9". */
  function makeUserId(name) {
    let suffix = storage.get(sessionStorage, SUFFIX_KEY);
    if (!suffix || !/^[a-z0-9]{4,8}$/.test(suffix)) {
      suffix = randomChars(4);
      storage.set(sessionStorage, SUFFIX_KEY, suffix);
    }
    const slug = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
    return `${slug || 'guest'}-${suffix}`;
  }

  /** A stream id unique to this user and this join (stream ids allow no '@' or ':'). */
  function makeStreamId(userId) {
    return `${userId.replace(/[@:]/g, '_')}-cam-${randomChars(4)}`;
  }

  function initials(name) {
    const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
    const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
    return letters.toUpperCase();
  }

  function hueOf(text) {
    let h = 0;
    for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function displayName(user) {
    return (user && (user.userName || user.userID)) || 'Guest';
  }

  /** Readable text for SDK errors ({code, msg}), fetch errors, DOMExceptions and strings. */
  function describe(err) {
    if (!err) return 'unknown error';
    if (typeof err === 'string') return err;
    // Media errors: the name says it best; their numeric code is a legacy DOM constant.
    if (typeof DOMException !== 'undefined' && err instanceof DOMException) return err.message || err.name;
    const text = err.msg || err.message || err.name || String(err);
    const code = err.code ?? err.errorCode;
    return code !== undefined && code !== 0 && !String(text).includes(String(code)) ? `${text} (code ${code})` : text;
  }

  /** Treats a plain value and a promise alike (SDK methods may be sync or async). */
  function settle(value) {
    return Promise.resolve(value);
  }

  function withTimeout(promise, ms) {
    return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms))]);
  }

  function safely(what, fn) {
    try {
      const result = fn();
      if (result && typeof result.then === 'function') {
        result.then(null, (e) => console.warn(`[huddle demo] ${what}:`, e));
      }
      return result;
    } catch (e) {
      console.warn(`[huddle demo] ${what}:`, e);
      return undefined;
    }
  }

  function svgIcon(name, cls) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('aria-hidden', 'true');
    if (cls) svg.setAttribute('class', cls);
    const use = document.createElementNS(ns, 'use');
    use.setAttribute('href', `#i-${name}`);
    svg.appendChild(use);
    return svg;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'style') node.setAttribute('style', v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function timeOf(ms) {
    const d = new Date(typeof ms === 'number' && ms > 0 ? ms : Date.now());
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // ---------------------------------------------------------------- toasts

  function toast(message, kind = 'info', ms = 5000) {
    const node = el('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      kind === 'error' ? svgIcon('alert', 'toast-icon') : null,
      el('span', { class: 'toast-text', text: message }));
    const close = el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, svgIcon('close'));
    const dismiss = () => {
      node.classList.add('leaving');
      setTimeout(() => node.remove(), 200);
    };
    close.addEventListener('click', dismiss);
    node.append(close);
    ui.toasts.append(node);
    while (ui.toasts.children.length > 4) ui.toasts.firstElementChild.remove();
    if (ms > 0) setTimeout(dismiss, ms);
  }

  // ---------------------------------------------------------------- lobby

  function initLobby() {
    const params = new URLSearchParams(location.search);
    const room = (params.get('room') || '').trim();
    ui.room.value = room || randomRoomId();
    ui.name.value = storage.get(localStorage, NAME_KEY) || '';
    if (room && !ROOM_ID_RE.test(room)) showFormError(roomIdProblem(room), ui.room);

    ui.joinForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      join();
    });
    ui.newRoom.addEventListener('click', () => {
      ui.room.value = randomRoomId();
      clearFormError();
      ui.room.focus();
    });
    for (const input of [ui.room, ui.name]) input.addEventListener('input', clearFormError);
    (ui.name.value ? ui.join : ui.name).focus();
  }

  function roomIdProblem(room) {
    if (!room) return 'Enter a room ID.';
    if (room.length > 128) return 'The room ID is too long (at most 128 characters).';
    const bad = [...new Set(room.replace(/[A-Za-z0-9_.~-]/g, ''))].map((c) => (c === ' ' ? 'spaces' : `“${c}”`));
    return `The room ID may only contain letters, digits and _ . ~ - (it has ${bad.join(', ')}).`;
  }

  function validateLobby(roomID, userName) {
    if (!ROOM_ID_RE.test(roomID)) return { field: ui.room, message: roomIdProblem(roomID) };
    if (!userName) return { field: ui.name, message: 'Enter your name, so others know who you are.' };
    if (userName.length > NAME_MAX) return { field: ui.name, message: `Your name is too long (at most ${NAME_MAX} characters).` };
    return null;
  }

  function showFormError(message, field) {
    ui.formErrorText.textContent = message;
    ui.formError.hidden = false;
    for (const input of [ui.room, ui.name]) input.removeAttribute('aria-invalid');
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  function clearFormError() {
    ui.formError.hidden = true;
    for (const input of [ui.room, ui.name]) input.removeAttribute('aria-invalid');
  }

  function setJoining(busy) {
    ui.join.disabled = busy;
    ui.join.classList.toggle('busy', busy);
    ui.join.querySelector('.btn-label').textContent = busy ? 'Joining…' : 'Join room';
  }

  function showLobby() {
    ui.call.hidden = true;
    ui.lobby.hidden = false;
    document.title = 'Huddle';
    setJoining(false);
    (ui.name.value ? ui.join : ui.name).focus();
  }

  // ---------------------------------------------------------------- tokens

  async function fetchToken(userID, roomID) {
    const url = `/dev/token?userId=${encodeURIComponent(userID)}&roomId=${encodeURIComponent(roomID)}`;
    let res;
    try {
      res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    } catch {
      throw new Error('Cannot reach the Huddle server. Check that it is running and try again.');
    }
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (res.status === 404) {
      throw new Error('This server does not hand out demo tokens (dev mode is off). Start it with ' +
        '"huddle serve --dev", or have your business server issue tokens.');
    }
    if (!res.ok) {
      const detail = body && body.message ? `${body.message}${body.code ? ` (code ${body.code})` : ''}` : `HTTP ${res.status}`;
      throw new Error(`The server refused a token: ${detail}`);
    }
    if (!body || typeof body.token !== 'string') throw new Error('The server sent an unexpected token response.');
    return body;
  }

  function serverUrl() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  // ---------------------------------------------------------------- join / leave

  async function join() {
    if (session) return;
    clearFormError();
    const roomID = ui.room.value.trim();
    const userName = ui.name.value.trim().replace(/\s+/g, ' ');
    ui.room.value = roomID;
    ui.name.value = userName;
    const problem = validateLobby(roomID, userName);
    if (problem) {
      showFormError(problem.message, problem.field);
      return;
    }
    storage.set(localStorage, NAME_KEY, userName);
    const userID = makeUserId(userName);
    if (!USER_ID_RE.test(userID)) {
      showFormError('Could not make a user ID from that name; try another name.', ui.name);
      return;
    }

    setJoining(true);
    let issued;
    try {
      issued = await fetchToken(userID, roomID);
    } catch (e) {
      setJoining(false);
      showFormError(e.message);
      return;
    }
    const Engine = window.ZegoExpressEngine || window.HuddleExpressEngine;
    if (typeof Engine !== 'function') {
      setJoining(false);
      showFormError('The Huddle SDK did not load (/sdk/huddle-express.js). Reload the page.');
      return;
    }
    let zg;
    try {
      zg = new Engine(issued.appId, serverUrl());
    } catch (e) {
      setJoining(false);
      showFormError(`Could not start the SDK: ${describe(e)}`);
      return;
    }
    safely('setDebugVerbose', () => zg.setDebugVerbose && zg.setDebugVerbose(false));

    const s = {
      zg, roomID, userID, userName,
      loggedIn: false, loggedInAt: 0, ended: false,
      localStream: null, streamID: null, publishing: false, hasVideo: false, hasAudio: false,
      camOn: true, micOn: true,
      remotes: new Map(), // streamID → remote tile state
      users: new Map([[userID, { userID, userName, self: true }]]),
      unread: 0,
    };
    session = s;
    listen(s);
    enterCall(s);

    let ok = false;
    let failure = null;
    try {
      ok = await zg.loginRoom(roomID, issued.token, { userID, userName }, { userUpdate: true });
    } catch (e) {
      failure = e;
    }
    if (session !== s || s.ended) return;
    if (ok !== true) {
      await closeSession(s, false);
      showLobby();
      showFormError(`Could not join the room: ${describe(failure || 'the server refused the login')}`);
      return;
    }
    s.loggedIn = true;
    s.loggedInAt = Date.now();
    window.huddleDemo = { zg, roomID, userID, get streamID() { return s.streamID; }, get localStream() { return s.localStream; } };
    const url = new URL(location.href);
    url.searchParams.set('room', roomID);
    history.replaceState(null, '', url);
    await startLocalMedia(s);
  }

  async function startLocalMedia(s) {
    const { zg } = s;
    let stream = null;
    try {
      stream = await zg.createStream({ camera: { audio: true, video: true } });
    } catch (first) {
      console.warn('[huddle demo] camera + microphone:', first);
      try {
        stream = await zg.createStream({ camera: { audio: true, video: false } });
        toast('No camera available: you joined with your microphone only.', 'info', 7000);
      } catch {
        toast(`No camera or microphone (${describe(first)}). You joined without sending audio or video.`, 'error', 8000);
      }
    }
    if (session !== s || s.ended) {
      if (stream) releaseStream(s, stream);
      return;
    }
    if (!stream) {
      s.camOn = false;
      s.micOn = false;
      renderLocal(s);
      return;
    }
    s.localStream = stream;
    s.hasVideo = typeof stream.getVideoTracks !== 'function' || stream.getVideoTracks().length > 0;
    s.hasAudio = typeof stream.getAudioTracks !== 'function' || stream.getAudioTracks().length > 0;
    s.camOn = s.hasVideo;
    s.micOn = s.hasAudio;

    const tile = ui.grid.querySelector('[data-testid="local-tile"]');
    const media = tile.querySelector('.tile-media');
    await settle(safely('local preview', () => zg.createLocalStreamView(stream).play(media.id)));
    // The preview must never play our own microphone back to us.
    for (const m of media.querySelectorAll('video, audio')) m.muted = true;
    tile.classList.add('has-media');
    renderLocal(s);

    s.streamID = makeStreamId(s.userID);
    try {
      const started = await settle(zg.startPublishingStream(s.streamID, stream, { extraInfo: extraInfoOf(s) }));
      if (started === false) throw new Error('the SDK refused to publish');
    } catch (e) {
      toast(`Others cannot see or hear you: ${describe(e)}`, 'error', 8000);
    }
  }

  function releaseStream(s, stream) {
    safely('destroyStream', () => s.zg.destroyStream(stream));
    // Make sure the camera light goes off even if the stream was already detached.
    if (typeof stream.getTracks === 'function') for (const t of stream.getTracks()) t.stop();
  }

  /** Stops all media of a session; the engine stays logged in or not as it is. */
  function releaseMedia(s) {
    for (const id of s.remotes.keys()) safely('stopPlayingStream', () => s.zg.stopPlayingStream(id));
    if (s.streamID && s.localStream) safely('stopPublishingStream', () => s.zg.stopPublishingStream(s.streamID));
    if (s.localStream) releaseStream(s, s.localStream);
    s.localStream = null;
    s.publishing = false;
  }

  async function closeSession(s, logout) {
    s.ended = true;
    releaseMedia(s);
    if (logout) {
      try {
        await withTimeout(settle(s.zg.logoutRoom(s.roomID)), 3000);
      } catch (e) {
        console.warn('[huddle demo] logoutRoom:', e);
      }
    }
    if (typeof s.zg.destroyEngine === 'function') safely('destroyEngine', () => s.zg.destroyEngine());
    if (session === s) session = null;
  }

  async function leave() {
    const s = session;
    if (!s) return;
    ui.leave.disabled = true;
    const wasEnded = s.ended;
    session = null;
    await closeSession(s, !wasEnded);
    ui.leave.disabled = false;
    showLobby();
    if (!wasEnded) toast(`You left ${s.roomID}.`, 'info', 3000);
  }

  /** The call ended without the user asking (kicked out, connection lost): say why, offer to rejoin. */
  function endCall(s, title, text) {
    if (s.ended) return;
    s.ended = true;
    releaseMedia(s);
    for (const tile of ui.grid.querySelectorAll('[data-testid="remote-tile"]')) tile.remove();
    s.remotes.clear();
    s.users = new Map([[s.userID, { userID: s.userID, userName: s.userName, self: true }]]);
    renderLocal(s);
    layout();
    ui.endedTitle.textContent = title;
    ui.endedText.textContent = text;
    ui.ended.hidden = false;
    ui.rejoin.focus();
  }

  async function backToLobby(rejoin) {
    const s = session;
    if (s) {
      session = null;
      await closeSession(s, false);
    }
    showLobby();
    if (rejoin) join();
  }

  // ---------------------------------------------------------------- SDK events

  function listen(s) {
    const on = (event, handler) => {
      s.zg.on(event, (...args) => {
        if (session !== s || s.ended) return;
        try {
          handler(...args);
        } catch (e) {
          console.error(`[huddle demo] ${event} handler:`, e);
        }
      });
    };

    on('roomStateChanged', (roomID, reason, errorCode, extendedData) => {
      setBadge(reason);
      if (reason === 'RECONNECTED') toast('Reconnected.', 'info', 2500);
      else if (reason === 'KICKOUT' && (errorCode === 5023 || errorCode === 5024)) {
        const why = serverReason(extendedData);
        if (errorCode === 5023) {
          endCall(s, 'Removed from the call', `The host removed you from this call${why ? `: ${why}` : '.'}`);
        } else {
          endCall(s, 'The call was closed', `The host ended this call for everyone${why ? `: ${why}` : '.'}`);
        }
      } else if (reason === 'KICKOUT') {
        endCall(s, 'Kicked out', 'You joined this room from another tab or device with the same name, or the room ' +
          'owner removed you. Rejoin to take the call back here.');
      } else if (reason === 'RECONNECT_FAILED' || (reason === 'LOGIN_FAILED' && s.loggedIn)) {
        endCall(s, 'Connection lost', `Huddle could not reconnect${errorCode ? ` (code ${errorCode})` : ''}. ` +
          'Check your network and rejoin.');
      }
    });

    on('roomUserUpdate', (roomID, updateType, userList) => {
      for (const user of userList || []) {
        if (!user || !user.userID || user.userID === s.userID) continue;
        if (updateType === 'ADD') {
          const isNew = !s.users.has(user.userID);
          s.users.set(user.userID, { userID: user.userID, userName: user.userName });
          // Users already in the room arrive right after login; only announce later arrivals.
          if (isNew && s.loggedIn && Date.now() - s.loggedInAt > 2000) systemMessage(`${displayName(user)} joined`);
        } else if (updateType === 'DELETE') {
          if (s.users.delete(user.userID)) systemMessage(`${displayName(user)} left`);
        }
      }
      renderParticipants(s);
    });

    on('roomStreamUpdate', (roomID, updateType, streamList) => {
      for (const info of streamList || []) {
        if (!info || !info.streamID) continue;
        if (updateType === 'ADD') addRemote(s, info);
        else if (updateType === 'DELETE') removeRemote(s, info.streamID);
      }
      renderParticipants(s);
    });

    on('streamExtraInfoUpdate', (roomID, streamList) => {
      for (const info of streamList || []) {
        const r = info && s.remotes.get(info.streamID);
        if (!r) continue;
        r.extra = parseExtraInfo(info.extraInfo);
        renderRemote(r);
      }
      renderParticipants(s);
    });

    on('publisherStateUpdate', (result) => {
      if (!result || result.streamID !== s.streamID) return;
      if (result.state === 'PUBLISHING') {
        s.publishing = true;
        pushExtraInfo(s);
      } else if (result.state === 'NO_PUBLISH') {
        s.publishing = false;
        if (result.errorCode) toast(`Others cannot see or hear you (error ${result.errorCode}).`, 'error', 8000);
      }
    });

    on('playerStateUpdate', (result) => {
      const r = result && s.remotes.get(result.streamID);
      if (!r) return;
      if (result.state === 'PLAYING') setTileStatus(r.tile, null);
      else if (result.state === 'NO_PLAY' && result.errorCode) {
        setTileStatus(r.tile, 'error', `Stream interrupted (error ${result.errorCode})`, () => playRemote(s, r));
      }
    });

    // The host (the business server) muted or unmuted someone's microphone or camera: the
    // relay stops sending it to everyone; say so.
    for (const [event, device] of [['remoteMicStatusUpdate', 'microphone'], ['remoteCameraStatusUpdate', 'camera']]) {
      on(event, (streamID, status) => {
        const r = s.remotes.get(streamID);
        if (!r) return;
        const who = displayName(r.user);
        toast(status === 'MUTE' ? `The host turned off ${who}'s ${device}.` : `The host turned ${who}'s ${device} back on.`,
          'info', 4000);
      });
    }

    on('playQualityUpdate', (streamID, stats) => {
      const r = s.remotes.get(streamID);
      if (r) showStats(r.tile, stats);
    });

    on('publishQualityUpdate', (streamID, stats) => {
      if (streamID === s.streamID) showStats(ui.grid.querySelector('[data-testid="local-tile"]'), stats);
    });

    on('IMRecvBroadcastMessage', (roomID, messages) => {
      for (const m of messages || []) {
        if (!m || (m.fromUser && m.fromUser.userID === s.userID)) continue;
        addChatMessage(s, { from: m.fromUser || {}, text: String(m.message ?? ''), time: m.sendTime, self: false });
      }
    });

    on('tokenWillExpire', async (roomID) => {
      try {
        const { token } = await fetchToken(s.userID, s.roomID);
        if (session !== s) return;
        await settle(s.zg.renewToken(token, roomID || s.roomID));
      } catch (e) {
        toast(`Could not renew the session token: ${describe(e)}`, 'error', 8000);
      }
    });
  }

  function setBadge(reason) {
    const [text, tone] = ROOM_STATES[reason] || [String(reason), 'pending'];
    ui.badge.textContent = text;
    ui.badge.dataset.state = reason;
    ui.badge.dataset.tone = tone;
  }

  // ---------------------------------------------------------------- tiles

  function enterCall(s) {
    ui.lobby.hidden = true;
    ui.call.hidden = false;
    ui.ended.hidden = true;
    document.title = `${s.roomID} · Huddle`;
    ui.roomName.textContent = s.roomID;
    ui.roomName.title = s.roomID;
    ui.roomMini.textContent = s.roomID;
    ui.badge.textContent = 'Connecting…';
    ui.badge.dataset.state = '';
    ui.badge.dataset.tone = 'pending';
    ui.grid.replaceChildren(makeTile({ local: true, userID: s.userID, name: s.userName }));
    ui.messages.replaceChildren();
    ui.chatEmpty.hidden = false;
    ui.chatInput.value = '';
    s.unread = 0;
    renderUnread(s);
    setSideOpen(!window.matchMedia('(max-width: 900px)').matches);
    renderLocal(s);
    layout();
  }

  function makeTile({ local, userID, streamID, name }) {
    const mediaId = `media-${++mediaSeq}`;
    const tile = el('div', {
      class: `tile${local ? ' local' : ''}`,
      'data-testid': local ? 'local-tile' : 'remote-tile',
      'data-user-id': userID,
      'data-stream-id': streamID,
      role: 'group',
      tabindex: '0',
      style: `--avatar-h:${hueOf(userID)}`,
    });
    const label = el('div', { class: 'tile-label' },
      svgIcon('mic-off', 'tile-muted'),
      el('span', { class: 'tile-name' }));
    tile.append(
      el('div', { class: 'tile-media', id: mediaId }),
      el('div', { class: 'tile-avatar', 'aria-hidden': 'true' }, el('span', { class: 'avatar-circle' })),
      el('div', { class: 'tile-stats', 'aria-hidden': 'true' }),
      el('div', { class: 'tile-status' }),
      label,
    );
    setTileName(tile, name, local);
    return tile;
  }

  function setTileName(tile, name, local) {
    tile.querySelector('.tile-name').textContent = local ? `You` : name;
    tile.querySelector('.avatar-circle').textContent = initials(name);
    tile.setAttribute('aria-label', local ? `Your video (${name})` : `${name}'s video`);
  }

  /**
   * Shows the local user's media state everywhere it appears: the local tile, the mic and camera
   * buttons, and the user's own entry in the People list. Call it after every change of
   * `localStream`, `micOn` or `camOn`.
   */
  function renderLocal(s) {
    const tile = ui.grid.querySelector('[data-testid="local-tile"]');
    if (tile) {
      tile.classList.toggle('cam-off', !s.localStream || !s.camOn);
      tile.classList.toggle('mic-off', !s.micOn);
    }
    const hasStream = Boolean(s.localStream) && !s.ended;
    ui.mic.disabled = !hasStream || !s.hasAudio;
    ui.cam.disabled = !hasStream || !s.hasVideo;
    setToggle(ui.mic, !s.micOn, s.micOn ? 'Mute microphone' : 'Unmute microphone');
    setToggle(ui.cam, !s.camOn, s.camOn ? 'Turn off camera' : 'Turn on camera');
    renderParticipants(s);
  }

  function setToggle(button, off, label) {
    button.setAttribute('aria-pressed', String(off));
    button.setAttribute('aria-label', label);
    button.title = label;
    button.classList.toggle('is-off', off);
  }

  function parseExtraInfo(text) {
    if (!text) return {};
    try {
      const value = JSON.parse(text);
      return value && typeof value === 'object' ? value : {};
    } catch {
      return {};
    }
  }

  function extraInfoOf(s) {
    return JSON.stringify({ camera: s.camOn, mic: s.micOn });
  }

  function pushExtraInfo(s) {
    if (!s.streamID || !s.localStream) return;
    safely('setStreamExtraInfo', () => s.zg.setStreamExtraInfo(s.streamID, extraInfoOf(s)));
  }

  function addRemote(s, info) {
    const existing = s.remotes.get(info.streamID);
    if (existing) {
      // Announced again (for example after a reconnect): refresh what we know, keep playing.
      if (info.extraInfo !== undefined) existing.extra = parseExtraInfo(info.extraInfo);
      renderRemote(existing);
      return;
    }
    const user = info.user || {};
    if (user.userID && user.userID !== s.userID && !s.users.has(user.userID)) {
      s.users.set(user.userID, { userID: user.userID, userName: user.userName });
    }
    const r = {
      streamID: info.streamID,
      user,
      extra: parseExtraInfo(info.extraInfo),
      tile: makeTile({ local: false, userID: user.userID || '', streamID: info.streamID, name: displayName(user) }),
    };
    s.remotes.set(info.streamID, r);
    ui.grid.append(r.tile);
    renderRemote(r);
    layout();
    playRemote(s, r);
  }

  async function playRemote(s, r) {
    setTileStatus(r.tile, 'loading');
    try {
      const stream = await s.zg.startPlayingStream(r.streamID);
      if (session !== s || s.ended || s.remotes.get(r.streamID) !== r) {
        safely('stopPlayingStream', () => s.zg.stopPlayingStream(r.streamID));
        return;
      }
      const media = r.tile.querySelector('.tile-media');
      media.replaceChildren();
      await settle(s.zg.createRemoteStreamView(stream).play(media.id, { enableAutoplayDialog: true }));
      r.tile.classList.add('has-media');
      setTileStatus(r.tile, null);
    } catch (e) {
      if (session !== s || s.remotes.get(r.streamID) !== r) return;
      setTileStatus(r.tile, 'error', `Could not play: ${describe(e)}`, () => playRemote(s, r));
      toast(`Could not play ${displayName(r.user)}'s video: ${describe(e)}`, 'error');
    }
  }

  function removeRemote(s, streamID) {
    const r = s.remotes.get(streamID);
    if (!r) return;
    s.remotes.delete(streamID);
    safely('stopPlayingStream', () => s.zg.stopPlayingStream(streamID));
    r.tile.remove();
    layout();
  }

  function renderRemote(r) {
    // Missing fields mean "on": streams of other clients may carry no extra info at all.
    r.tile.classList.toggle('cam-off', r.extra.camera === false);
    r.tile.classList.toggle('mic-off', r.extra.mic === false);
  }

  function setTileStatus(tile, state, message, retry) {
    const box = tile.querySelector('.tile-status');
    tile.dataset.status = state || '';
    box.replaceChildren();
    if (state === 'loading') box.append(el('span', { class: 'spinner', 'aria-label': 'Connecting' }));
    if (state === 'error') {
      box.append(el('span', { class: 'status-text', text: message || 'Something went wrong' }));
      if (retry) {
        const button = el('button', { type: 'button', class: 'btn btn-small' }, 'Retry');
        button.addEventListener('click', retry);
        box.append(button);
      }
    }
  }

  function showStats(tile, stats) {
    if (!tile || !stats) return;
    const v = stats.video || {};
    const a = stats.audio || {};
    const parts = [];
    if (v.frameWidth > 0 && v.frameHeight > 0) parts.push(`${v.frameWidth}×${v.frameHeight}`);
    if (Number.isFinite(v.videoFPS)) parts.push(`${Math.round(v.videoFPS)} fps`);
    const kbps = (Number(v.videoBitrate) || 0) + (Number(a.audioBitrate) || 0);
    if (Number.isFinite(v.videoBitrate) || Number.isFinite(a.audioBitrate)) parts.push(`${Math.round(kbps)} kbps`);
    tile.querySelector('.tile-stats').textContent = parts.join(' · ');
  }

  /** Sizes the tiles so that n 16:9 tiles fill the stage as well as possible. */
  function layout() {
    const tiles = ui.grid.children.length;
    if (!tiles || ui.call.hidden) return;
    const gap = 12;
    const width = ui.grid.clientWidth;
    const height = ui.grid.clientHeight;
    if (!width || !height) return;
    const sizes = [];
    for (let cols = 1; cols <= tiles; cols++) {
      const rows = Math.ceil(tiles / cols);
      sizes.push(Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * (16 / 9)));
    }
    const largest = Math.max(...sizes);
    // On a landscape stage, side by side reads better than stacked: take the most columns that
    // keep tiles at least 3/4 of the largest possible size.
    let best = { size: largest, cols: sizes.indexOf(largest) + 1 };
    if (width > height) {
      for (let i = sizes.length - 1; i >= 0; i--) {
        if (sizes[i] >= largest * 0.75) {
          if (i + 1 > best.cols) best = { size: sizes[i], cols: i + 1 };
          break;
        }
      }
    }
    ui.grid.style.setProperty('--tile-w', `${Math.max(120, Math.floor(best.size))}px`);
    ui.grid.dataset.count = String(tiles);
  }

  // ---------------------------------------------------------------- participants

  function renderParticipants(s) {
    const streamsByUser = new Map();
    for (const r of s.remotes.values()) if (r.user && r.user.userID) streamsByUser.set(r.user.userID, r);
    const users = [...s.users.values()].sort((a, b) =>
      (b.self ? 1 : 0) - (a.self ? 1 : 0) || displayName(a).localeCompare(displayName(b)));
    ui.participants.replaceChildren(...users.map((user) => {
      let cam = true;
      let mic = true;
      if (user.self) {
        cam = Boolean(s.localStream) && s.camOn;
        mic = Boolean(s.localStream) && s.micOn;
      } else {
        const r = streamsByUser.get(user.userID);
        cam = Boolean(r) && r.extra.camera !== false;
        mic = Boolean(r) && r.extra.mic !== false;
      }
      const name = displayName(user);
      return el('li', { class: 'participant', 'data-testid': 'participant', 'data-user-id': user.userID },
        el('span', { class: 'avatar', style: `--avatar-h:${hueOf(user.userID)}`, 'aria-hidden': 'true', text: initials(name) }),
        el('span', { class: 'p-name' }, el('span', { class: 'p-label', text: name }),
          user.self ? el('span', { class: 'p-you', text: '(you)' }) : null),
        el('span', { class: 'p-icons' },
          iconWithLabel(mic ? 'mic' : 'mic-off', mic ? 'microphone on' : 'microphone off', !mic),
          iconWithLabel(cam ? 'cam' : 'cam-off', cam ? 'camera on' : 'camera off', !cam)));
    }));
    ui.peopleCount.textContent = String(users.length);
    ui.peopleCount.setAttribute('aria-label', `${users.length} in the room`);
  }

  function iconWithLabel(icon, label, off) {
    const wrap = el('span', { class: `p-icon${off ? ' off' : ''}`, title: label, role: 'img', 'aria-label': label });
    wrap.append(svgIcon(icon));
    return wrap;
  }

  // ---------------------------------------------------------------- chat

  function addChatMessage(s, { from, text, time, self }) {
    const last = ui.messages.lastElementChild;
    const fromId = from.userID || '';
    const continued = last && last.dataset.userId === fromId && last.classList.contains('msg') &&
      (Number(time) || Date.now()) - Number(last.dataset.time || 0) < 120000;
    const item = el('li', {
      class: `msg${self ? ' self' : ''}${continued ? ' cont' : ''}`,
      'data-testid': 'chat-message',
      'data-user-id': fromId,
      'data-time': String(Number(time) || Date.now()),
    },
    el('div', { class: 'msg-head' },
      el('span', { class: 'msg-who', text: self ? 'You' : displayName(from) }),
      el('time', { class: 'msg-time', text: timeOf(Number(time)) })),
    el('div', { class: 'msg-body', text }));
    appendToChat(item);
    if (!self && ui.call.classList.contains('side-closed')) {
      s.unread += 1;
      renderUnread(s);
    }
    return item;
  }

  function systemMessage(text) {
    appendToChat(el('li', { class: 'msg-system', text }));
  }

  function appendToChat(item) {
    const list = ui.messages;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.append(item);
    ui.chatEmpty.hidden = true;
    while (list.children.length > 300) list.firstElementChild.remove();
    if (nearBottom || item.classList.contains('self')) list.scrollTop = list.scrollHeight;
  }

  async function sendChat() {
    const s = session;
    const text = ui.chatInput.value.trim();
    if (!s || s.ended || !text) return;
    if (!s.loggedIn) {
      toast('Not connected yet: wait a moment and send again.', 'info', 3000);
      return;
    }
    if (text.length > CHAT_MAX) {
      toast(`Messages are limited to ${CHAT_MAX} characters.`, 'error');
      return;
    }
    ui.chatInput.value = '';
    const item = addChatMessage(s, { from: { userID: s.userID, userName: s.userName }, text, time: Date.now(), self: true });
    item.classList.add('pending');
    try {
      const result = await s.zg.sendBroadcastMessage(s.roomID, text);
      if (result && result.errorCode) throw result;
      item.classList.remove('pending');
    } catch (e) {
      item.classList.remove('pending');
      item.classList.add('failed');
      item.title = `Not sent: ${describe(e)}`;
      toast(`Message not sent: ${describe(e)}`, 'error');
    }
  }

  function renderUnread(s) {
    ui.unread.hidden = !s.unread;
    ui.unread.textContent = s.unread > 9 ? '9+' : String(s.unread);
  }

  function setSideOpen(open) {
    ui.call.classList.toggle('side-closed', !open);
    ui.toggleSide.setAttribute('aria-pressed', String(open));
    const label = open ? 'Hide people and chat' : 'Show people and chat';
    ui.toggleSide.setAttribute('aria-label', label);
    ui.toggleSide.title = label;
    if (open && session) {
      session.unread = 0;
      renderUnread(session);
    }
    requestAnimationFrame(layout);
  }

  // ---------------------------------------------------------------- controls

  /** What the mic and camera buttons switch: the session flag, the SDK call, the wording. */
  const DEVICES = {
    mic: { flag: 'micOn', mute: 'mutePublishStreamAudio', failed: (on) => `${on ? 'unmute' : 'mute'} the microphone` },
    cam: { flag: 'camOn', mute: 'mutePublishStreamVideo', failed: (on) => `turn the camera ${on ? 'on' : 'off'}` },
  };

  async function toggleDevice(device) {
    const s = session;
    if (!s || !s.localStream) return;
    const { flag, mute, failed } = DEVICES[device];
    const on = !s[flag];
    try {
      const ok = await settle(s.zg[mute](s.localStream, !on));
      if (ok === false) throw new Error('the SDK refused');
    } catch (e) {
      toast(`Could not ${failed(on)}: ${describe(e)}`, 'error');
      return;
    }
    s[flag] = on;
    renderLocal(s);
    pushExtraInfo(s);
  }

  async function copyInvite() {
    const s = session;
    const roomID = s ? s.roomID : ui.room.value.trim();
    const url = new URL(location.pathname, location.origin);
    url.searchParams.set('room', roomID);
    const link = url.toString();
    let copied = false;
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch {
      const area = el('textarea', { class: 'sr-only', readonly: true });
      area.value = link;
      document.body.append(area);
      area.select();
      try { copied = document.execCommand('copy'); } catch { copied = false; }
      area.remove();
    }
    if (copied) toast('Invite link copied. Anyone with it can join this room.', 'info', 3500);
    else toast(`Copy this invite link: ${link}`, 'info', 12000);
  }

  function tickClock() {
    ui.clock.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    initLobby();
    ui.chatForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      sendChat();
    });
    ui.mic.addEventListener('click', () => toggleDevice('mic'));
    ui.cam.addEventListener('click', () => toggleDevice('cam'));
    ui.leave.addEventListener('click', leave);
    ui.copyLink.addEventListener('click', copyInvite);
    ui.toggleSide.addEventListener('click', () => setSideOpen(ui.call.classList.contains('side-closed')));
    ui.rejoin.addEventListener('click', () => backToLobby(true));
    ui.backToLobby.addEventListener('click', () => backToLobby(false));
    new ResizeObserver(() => layout()).observe(ui.grid);
    tickClock();
    setInterval(tickClock, 10000);
    // Leave politely when the tab closes, so that others see us go at once.
    window.addEventListener('pagehide', () => {
      const s = session;
      if (s && !s.ended) {
        releaseMedia(s);
        safely('logoutRoom', () => s.zg.logoutRoom(s.roomID));
      }
    });
  }

  init();
})();
