// Merged into JupyterLab's extension build (package.json jupyterlab.webpackConfig). The container's
// entry module is named by the absolute paths it exposes, so webpack's default (hashed) module ids
// would make the build depend on where the checkout lies; ids by order make it reproducible, which
// tests/server/test_labextension.py checks against the shipped build.
module.exports = {
  optimization: { moduleIds: 'natural' }
};
