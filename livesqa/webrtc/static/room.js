// livesqa room page: one sending microphone transceiver + receive-only "slots" to hear others.
// No trickle ICE: gather fully, then one POST carries the offer and returns the answer.
// Once joined, the page asks the server every second how the others hear this participant
// (POST /me with the participant's id and secret) and shows the five dimensions, the network
// figures and who else is here. Every text from the server goes in with textContent, never as HTML.
"use strict";

const roomName = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "main");
const params = new URLSearchParams(location.search);
const api = `/api/room/${encodeURIComponent(roomName)}`;
const $ = (id) => document.getElementById(id);
const DIMENSIONS = ["mos", "noi", "col", "dis", "loud"];
const POLL_MS = 1000;
let session = null; // {pc, stream, id, secret, name, poll, meter}

function setStatus(text) {
  $("status").textContent = text;
  document.body.dataset.status = text.split(" ")[0];
}

function postJson(path, body) {
  return fetch(`${api}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}

// --- microphone level meter (what the microphone picks up, before mute) ---------------------
function startMeter(stream) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096; // ~85 ms of audio per reading
  ctx.createMediaStreamSource(stream).connect(analyser);
  const mute = ctx.createGain(); // silent path to the output: makes every browser pull the graph
  mute.gain.value = 0;
  analyser.connect(mute).connect(ctx.destination);
  const buffer = new Float32Array(analyser.fftSize);
  let shown = -120; // a meter rises at once and falls 30 dB/s, so syllables do not flicker
  const timer = setInterval(() => {
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (const v of buffer) sum += v * v;
    const rms = Math.sqrt(sum / buffer.length);
    const now = rms > 0 ? Math.max(20 * Math.log10(rms), -120) : -120;
    const dbfs = shown = Math.max(now, shown - 3);
    $("level").value = Math.max(dbfs, -60);
    $("level").dataset.dbfs = dbfs.toFixed(1);
    $("levelText").textContent = dbfs <= -119 ? "silence" : `${dbfs.toFixed(0)} dBFS`;
  }, 100);
  return { ctx, timer };
}

function stopMeter(meter) {
  if (!meter) return;
  clearInterval(meter.timer);
  meter.ctx.close().catch(() => {});
  $("level").value = -60;
  $("levelText").textContent = "–";
}

// --- how the others hear you -----------------------------------------------------------------
function band(value) {
  if (value === null || value === undefined) return "none";
  return value >= 4 ? "good" : value >= 3 ? "fair" : value >= 2 ? "poor" : "bad";
}

function setCell(id, value, digits, classify) {
  const el = $(id);
  const known = value !== null && value !== undefined;
  el.textContent = known ? Number(value).toFixed(digits) : "–";
  el.dataset.value = known ? String(value) : "";
  if (classify) el.className = band(known ? value : null);
}

function showView(view) {
  const w = view.window;
  if (!w) {
    $("window").textContent = "no score yet: speak, the first window takes a few seconds";
  } else if (!w.scores) {
    $("window").textContent = `window ending at ${w.end_s.toFixed(1)} s: too little speech to score`;
  } else {
    $("window").textContent = `window ending at ${w.end_s.toFixed(1)} s of your audio`;
  }
  $("window").dataset.endS = w ? String(w.end_s) : "";
  for (const d of DIMENSIONS) setCell(`score-${d}`, w && w.scores ? w.scores[d] : null, 2, true);
  const net = view.net || {};
  setCell("net-loss", net.loss_pct, 1);
  setCell("net-jitter", net.jitter_ms, 1);
  setCell("net-rtt", net.rtt_ms, 0);
  setCell("net-emodel", net.emodel_mos, 2, true);
  setCell("net-latency", w ? w.latency_ms : null, 0);
  setCell("net-skipped", view.skipped, 0);
  const others = view.others || [];
  $("others").replaceChildren(...(others.length ? others.map((p) => {
    const li = document.createElement("li");
    li.textContent = p.name; // textContent: names are never parsed as HTML
    return li;
  }) : [Object.assign(document.createElement("li"), { className: "none", textContent: "nobody else yet" })]));
}

async function poll() {
  if (!session) return;
  const { id, secret } = session;
  try {
    const r = await postJson("/me", { id, secret });
    if (!session || session.id !== id) return;
    if (!r.ok) return; // the next poll retries
    const view = await r.json();
    if (view.left) {
      end(view.by_server ? `disconnected by the server (${view.left})` : "left");
      return;
    }
    showView(view);
    const muted = session.stream.getAudioTracks()[0].enabled ? "" : ", muted";
    if (session.connected) setStatus(`connected as ${view.name}${muted}`);
  } catch (err) { /* network hiccup: the next poll retries */ }
}

// --- join / mute / leave -----------------------------------------------------------------------
async function join() {
  if (session) return;
  $("join").disabled = true;
  setStatus("joining: asking for the microphone");
  try {
    const info = await (await fetch(api)).json();
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly", streams: [stream] });
    for (let i = 0; i < info.max_participants - 1; i++) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (event) => {
      const el = document.createElement("audio");
      el.autoplay = true;
      el.srcObject = new MediaStream([event.track]);
      $("audio").appendChild(el);
    };
    pc.onconnectionstatechange = () => {
      if (!session || session.pc !== pc) return;
      const state = pc.connectionState;
      session.connected = state === "connected";
      if (state === "failed" || state === "closed") {
        // ask the server why; if it no longer answers, say what the connection said
        postJson("/me", { id: session.id, secret: session.secret })
          .then((r) => (r.ok ? r.json() : {}))
          .then((v) => end(`disconnected by the server (${(v && v.left) || `connection ${state}`})`))
          .catch(() => end(`disconnected by the server (connection ${state})`));
      } else {
        setStatus(`${state} as ${session.name}`);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 5000);
    const response = await postJson("/join", {
      type: "offer", sdp: pc.localDescription.sdp,
      name: $("name").value, token: $("token").value || params.get("token") || undefined,
    });
    const answer = await response.json();
    if (!response.ok) {
      pc.close();
      stream.getTracks().forEach((t) => t.stop());
      throw new Error(answer.error || response.statusText);
    }
    session = { pc, stream, id: answer.id, secret: answer.secret, name: answer.name, connected: false };
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    session.meter = startMeter(stream);
    session.poll = setInterval(poll, POLL_MS);
    setStatus(`connecting as ${answer.name}`);
    $("leave").disabled = false;
    $("mute").disabled = false;
  } catch (err) {
    setStatus(`error: ${err.message || err}`);
    $("join").disabled = false;
  }
}

function setMuted(muted) {
  if (!session) return;
  session.stream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
  $("mute").textContent = muted ? "Unmute" : "Mute";
  $("mute").setAttribute("aria-pressed", String(muted));
  $("muted").hidden = !muted;
}

// Close everything locally; `message` says why (the user left, or the server dropped us).
function end(message) {
  if (!session) return;
  const { pc, stream, poll: timer, meter } = session;
  session = null;
  clearInterval(timer);
  stopMeter(meter);
  pc.close();
  stream.getTracks().forEach((t) => t.stop());
  $("audio").replaceChildren();
  $("join").disabled = false;
  $("leave").disabled = true;
  $("mute").disabled = true;
  $("muted").hidden = true;
  $("mute").textContent = "Mute";
  $("mute").setAttribute("aria-pressed", "false");
  setStatus(message);
}

function leave() {
  if (!session) return;
  // keepalive: the request outlives the page when it is being closed (pagehide)
  fetch(`${api}/leave`, {
    method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id: session.id, secret: session.secret }),
  }).catch(() => {});
  end("left");
}

$("room").textContent = roomName;
$("name").value = params.get("name") || "";
fetch(api).then((r) => r.json()).then((info) => { $("tokenLabel").hidden = !info.needs_token; }).catch(() => {});
$("joinForm").addEventListener("submit", (e) => { e.preventDefault(); join(); });
$("leave").addEventListener("click", leave);
$("mute").addEventListener("click", () => setMuted($("mute").getAttribute("aria-pressed") !== "true"));
window.addEventListener("pagehide", leave);
if (params.get("autojoin") === "1") join();
