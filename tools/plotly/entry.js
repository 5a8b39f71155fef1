// The trace types the pages draw: bar (the timeline, the breakdown) and scatter (the
// transition graph; plotly.js always includes it). Add one here, run build.sh, commit.
var Plotly = require('plotly.js/lib/core');

Plotly.register([require('plotly.js/lib/bar')]);

module.exports = Plotly;
