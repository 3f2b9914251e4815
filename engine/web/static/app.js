// Forms marked "inline" are sent in the background and their answer is shown in place, so a collector
// works down the worklist without leaving it. Without this script the same forms post and come back.
(function () {
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form.method.toLowerCase() === 'get') {
      // drop empty filters so the URL carries only what was chosen
      Array.prototype.forEach.call(form.elements, function (el) { if (el.name && el.value === '') el.disabled = true; });
      setTimeout(function () { Array.prototype.forEach.call(form.elements, function (el) { el.disabled = false; }); }, 0);
      return;
    }
    if (!form.classList.contains('inline')) return;
    event.preventDefault();
    var row = form.closest('[data-row]');
    var status = row ? row.querySelector('.status') : null;
    var buttons = row ? row.querySelectorAll('button, summary') : form.querySelectorAll('button');
    Array.prototype.forEach.call(buttons, function (b) { b.setAttribute('disabled', 'disabled'); });
    fetch(form.action, {method: 'POST', body: new FormData(form), credentials: 'same-origin',
                        headers: {'X-Requested-With': 'fetch'}})
      .then(function (response) {
        return response.text().then(function (text) { return {ok: response.ok, text: text}; });
      })
      .then(function (answer) {
        if (status) status.innerHTML = answer.text;
        if (answer.ok && row) {
          row.classList.add('done');
          Array.prototype.forEach.call(row.querySelectorAll('details'), function (d) { d.open = false; });
        } else {
          Array.prototype.forEach.call(buttons, function (b) { b.removeAttribute('disabled'); });
        }
      })
      .catch(function () {
        if (status) status.textContent = '⚠';
        Array.prototype.forEach.call(buttons, function (b) { b.removeAttribute('disabled'); });
      });
  });
  // hover read-outs of the charts
  var readout = document.getElementById('readout');
  if (readout) {
    document.querySelectorAll('svg.chart [data-tip]').forEach(function (mark) {
      mark.addEventListener('mousemove', function (e) {
        readout.textContent = mark.getAttribute('data-tip');
        readout.style.left = (e.clientX + 12) + 'px';
        readout.style.top = (e.clientY + 12) + 'px';
        readout.style.display = 'block';
      });
      mark.addEventListener('mouseleave', function () { readout.style.display = 'none'; });
    });
  }
  document.documentElement.setAttribute('data-ready', '1');
})();
