// Posts the form to /api/maps and shows the returned PNG data URLs. No external assets: works offline.
(function () {
  const form = document.getElementById("form");
  const statusBox = document.getElementById("status");
  const errorBox = document.getElementById("error");
  const warningBox = document.getElementById("warning");
  const results = document.getElementById("results");
  const maxBytes = parseFloat(form.dataset.maxMb) * 1024 * 1024;

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    statusBox.textContent = "";
  }

  function figure(item, cls) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = item.src;
    img.alt = item.title;
    img.className = "map " + cls;
    const cap = document.createElement("figcaption");
    cap.textContent = item.title;
    fig.append(img, cap);
    return fig;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    const file = document.getElementById("image").files[0];
    if (!file) { showError("Choose an image first."); return; }
    if (file.size > maxBytes) {
      showError("The upload is too large (" + (file.size / 1048576).toFixed(1) + " MB); the limit is " +
                form.dataset.maxMb + " MB.");
      return;
    }
    const button = document.getElementById("submit");
    button.disabled = true;
    statusBox.textContent = "Computing maps...";
    try {
      const response = await fetch("api/maps", { method: "POST", body: new FormData(form) });
      let data;
      try { data = await response.json(); } catch (e) { data = { error: "HTTP " + response.status }; }
      if (!response.ok || data.error) { showError(data.error || ("HTTP " + response.status)); return; }
      const modulation = document.getElementById("modulation");
      const gates = document.getElementById("gates");
      modulation.replaceChildren(figure({ src: data.input, title: "input" }, "input"),
                                 ...data.modulation.map((m) => figure(m, "modulation")));
      gates.replaceChildren(...data.gates.map((g) => figure(g, "gate")));
      document.getElementById("top5").replaceChildren(...(data.top5 || []).map((t) => {
        const li = document.createElement("li");
        li.textContent = t.label + " (" + (100 * t.prob).toFixed(1) + " %)";
        return li;
      }));
      document.getElementById("gate-block").textContent = "(" + data.gate_block + ")";
      warningBox.hidden = !data.warning;
      warningBox.textContent = data.warning ? "Warning: " + data.warning + "." : "";
      results.hidden = false;
      statusBox.textContent = "Done in " + data.seconds + " s (" + data.model + ", weights: " + data.weights + ").";
    } catch (e) {
      showError("The server did not answer: " + e);
    } finally {
      button.disabled = false;
    }
  });
})();
