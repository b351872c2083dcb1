// Validate a glTF/GLB file with the Khronos glTF validator (npm package gltf-validator).
// usage: node gltf_validate.js PATH_TO_GLTF_VALIDATOR_PACKAGE FILE.glb  -> the JSON report
const validator = require(process.argv[2]);
const fs = require("fs");
const data = new Uint8Array(fs.readFileSync(process.argv[3]));
validator.validateBytes(data, { maxIssues: 100 }).then(
  (report) => console.log(JSON.stringify(report)),
  (error) => {
    console.error(String(error));
    process.exit(2);
  },
);
