// livesqa room page: one sending microphone transceiver + receive-only "slots" to hear others.
// No trickle ICE: gather fully, then one POST carries the offer and returns the answer.
"use strict";

const roomName = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "main");
const params = new URLSearchParams(location.search);
const api = `/api/room/${encodeURIComponent(roomName)}`;
const $ = (id) => document.getElementById(id);
let session = null; // {pc, id, secret, stream}

function setStatus(text) {
  $("status").textContent = text;
  document.body.dataset.status = text.split(" ")[0];
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
      setStatus(`${pc.connectionState} as ${session ? session.name : "?"}`);
      if (pc.connectionState === "failed") leave();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 5000);
    const response = await fetch(`${api}/join`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        type: "offer", sdp: pc.localDescription.sdp,
        name: $("name").value, token: $("token").value || params.get("token") || undefined,
      }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    session = { pc, stream, id: answer.id, secret: answer.secret, name: answer.name };
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    setStatus(`connecting as ${answer.name}`);
    $("leave").disabled = false;
    refreshRoster();
  } catch (err) {
    setStatus(`error: ${err.message || err}`);
    $("join").disabled = false;
  }
}

function leave() {
  if (!session) return;
  const { pc, stream, id, secret } = session;
  session = null;
  const body = JSON.stringify({ id, secret });
  if (!navigator.sendBeacon(`${api}/leave`, new Blob([body], { type: "application/json" }))) {
    fetch(`${api}/leave`, { method: "POST", body, headers: { "Content-Type": "application/json" } });
  }
  pc.close();
  stream.getTracks().forEach((t) => t.stop());
  $("audio").replaceChildren();
  $("join").disabled = false;
  $("leave").disabled = true;
  setStatus("left");
}

async function refreshRoster() {
  try {
    const token = $("token").value || params.get("token") || "";
    const r = await fetch(`${api}/roster`, { headers: { "X-Livesqa-Token": token } });
    if (!r.ok) return;
    const { participants } = await r.json();
    $("roster").replaceChildren(...participants.map((p) => {
      const li = document.createElement("li");
      li.textContent = p.name; // textContent: names are never parsed as HTML
      if (session && p.id === session.id) li.className = "me";
      return li;
    }));
  } catch (err) { /* the next poll retries */ }
}

$("room").textContent = roomName;
$("name").value = params.get("name") || "";
fetch(api).then((r) => r.json()).then((info) => { $("tokenLabel").hidden = !info.needs_token; }).catch(() => {});
$("joinForm").addEventListener("submit", (e) => { e.preventDefault(); join(); });
$("leave").addEventListener("click", leave);
window.addEventListener("pagehide", leave);
setInterval(refreshRoster, 2000);
if (params.get("autojoin") === "1") join();
