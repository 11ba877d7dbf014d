'use strict';
// danfojs-node requires xlsx when it loads (for readExcel/toExcel). The registry's last xlsx, 0.18.5,
// has known advisories and no fixed version there; nothing in this project touches Excel files.
function unavailable() {
  throw new Error('Excel files are not supported in this install (xlsx is not installed); use CSV or JSON');
}
module.exports = {
  read: unavailable,
  readFile: unavailable,
  write: unavailable,
  writeFile: unavailable,
  utils: new Proxy({}, { get: () => unavailable }),
};
