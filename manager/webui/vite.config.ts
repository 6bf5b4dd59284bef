/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

declare const process: { env: Record<string, string | undefined> };

// `npm run dev` proxies the API to a manager on CORRAL_MANAGER (default :8080),
// so the dev server and the manager look same-origin to the browser.
const manager = process.env.CORRAL_MANAGER ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [preact()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: { "/api": { target: manager, ws: true, changeOrigin: false } },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
