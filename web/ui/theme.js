// Applies the saved theme before first paint (a classic script, so it runs before the page is
// drawn; the CSP forbids inline scripts).
(function () {
  try {
    var t = localStorage.getItem('kai.theme');
    if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  } catch (e) { /* storage disabled: follow the system */ }
})();
