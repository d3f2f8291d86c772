// Copies the charting library's built files from node_modules into web/static/vendor, where
// the hub serves them itself: the console must work offline, so nothing loads from a CDN.
// Run by `npm run build` (scripts/build-assets.sh runs `npm ci` first).
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = join(root, "web", "static", "vendor");
const files = [
  ["node_modules/uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["node_modules/uplot/dist/uPlot.min.css", "uPlot.min.css"],
  ["node_modules/uplot/LICENSE", "uPlot.LICENSE"],
];
mkdirSync(out, { recursive: true });
for (const [src, name] of files) {
  const from = join(root, src);
  if (!existsSync(from)) {
    console.error(`missing ${src}: run npm ci first`);
    process.exit(1);
  }
  copyFileSync(from, join(out, name));
}
console.log(`console assets: ${files.length} files in web/static/vendor`);
