// ESLint (flat config) for the browser scripts the web app serves (bot/web/static). `make lint` runs it.
"use strict";

const js = require("@eslint/js");
const globals = require("globals");

module.exports = [
  js.configs.recommended,
  {
    files: ["bot/web/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2020,
      sourceType: "script",
      globals: {
        ...globals.browser,
        // console.js defines it; every console's own script (loaded after it) reads it.
        ConsoleKit: "readonly",
      },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      "no-var": "off",
    },
  },
  {
    // the helper that defines the shared global
    files: ["bot/web/static/console.js"],
    languageOptions: { globals: { ConsoleKit: "off" } },
    rules: { "no-implicit-globals": "off" },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "commonjs", globals: { ...globals.node } },
  },
];
