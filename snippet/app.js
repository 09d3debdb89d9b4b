document.getElementById("loaded").textContent = new Date().toLocaleTimeString();
