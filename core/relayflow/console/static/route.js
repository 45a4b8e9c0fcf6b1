// The hash router's small shared part: going to a route, reading the current one.

/** Goes to a route such as "/execution/orders/o-7" (the URL fragment changes; the page follows). */
export function go(route) {
  if (location.hash === `#${route}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = route;
}

/** The current route: its path segments (decoded) and its query. */
export function current() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query: new URLSearchParams(search || "") };
}
