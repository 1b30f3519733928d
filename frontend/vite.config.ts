import { defineConfig } from "vite";

// No React plugin: esbuild's automatic JSX runtime is all this app needs.
export default defineConfig({
  base: "/app/",
  esbuild: { jsx: "automatic" },
  build: { outDir: "../src/tradewind/web/static/app", emptyOutDir: true, chunkSizeWarningLimit: 1200 },
  server: { proxy: { "/api": { target: "http://127.0.0.1:8000", ws: true } } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
