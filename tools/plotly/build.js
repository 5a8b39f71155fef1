// plotly.js's own esbuild settings (its esbuild-config.js), with our entry point.
const path = require('path');
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');
const version = require('plotly.js/package.json').version;

esbuild
    .build({
        entryPoints: [path.join(__dirname, 'entry.js')],
        outfile: path.join(__dirname, '..', '..', 'static', 'vendor', 'plotly', 'plotly-dashflow.min.js'),
        format: 'iife',
        globalName: 'Plotly',
        bundle: true,
        minify: true,
        sourcemap: false,
        plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
        alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
        define: { global: 'window', 'define.amd': 'false' },
        target: 'es2016',
        legalComments: 'eof',
        banner: {
            js:
                `/* plotly.js v${version} (https://plot.ly/javascript), Copyright 2012-2026 Plotly, Inc., ` +
                'MIT license. Custom bundle: core (scatter) and bar; built by tools/plotly/build.sh. */',
        },
        logLevel: 'info',
    })
    .catch(() => process.exit(1));
