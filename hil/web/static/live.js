// Follows a running board's console transcript: polls for what it gained, appends it, keeps the view at the end.
(function () {
  const pre = document.getElementById("console");
  const state = document.getElementById("state");
  const board = new URLSearchParams(location.search).get("board") || "0";
  let offset = 0;
  async function poll() {
    try {
      const reply = await fetch(`${pre.dataset.tail}?board=${board}&offset=${offset}`);
      if (!reply.ok) { state.textContent = "the run has finished"; return; }
      const data = await reply.json();
      if (data.text) {
        const atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
        pre.append(document.createTextNode(data.text));
        if (atEnd) window.scrollTo(0, document.body.scrollHeight);
      }
      offset = data.offset;
      state.textContent = data.waiting ? "waiting for the board" : data.running ? "following" : "stopped";
      if (data.waiting && !data.running) return;
    } catch (err) {
      state.textContent = "connection lost; retrying";
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
