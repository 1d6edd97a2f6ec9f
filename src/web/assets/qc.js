// Comfort only: every page works without it.
// - A click on an element with data-at-ms seeks the player there.
// - "Pin the current time" puts mm:ss of the player into the comments box.
document.addEventListener("DOMContentLoaded", function () {
  var audio = document.getElementById("player");
  if (!audio) return;
  document.querySelectorAll("[data-at-ms]").forEach(function (el) {
    el.classList.add("seek");
    el.addEventListener("click", function () {
      audio.currentTime = Number(el.getAttribute("data-at-ms")) / 1000;
      audio.play();
    });
  });
  var pin = document.getElementById("pin");
  var box = document.getElementById("comments");
  if (pin && box) {
    pin.hidden = false;
    pin.addEventListener("click", function (e) {
      e.preventDefault();
      var s = Math.floor(audio.currentTime);
      var mm = String(Math.floor(s / 60)).padStart(2, "0");
      var ss = String(s % 60).padStart(2, "0");
      box.value += (box.value && !box.value.endsWith("\n") ? "\n" : "") + mm + ":" + ss + " ";
      box.focus();
    });
  }
});
