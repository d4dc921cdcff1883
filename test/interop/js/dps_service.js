// The official DPS service client (azure-iot-provisioning-service)
// driven by the interoperability tests. Usage:
//   node dps_service.js DPS_CONNECTION_STRING OPERATION ARG_JSON
// Operations: createEnrollment, getEnrollment, deleteEnrollment, createGroup,
// getGroup, deleteGroup, queryEnrollments, queryGroups, getRegistration, and
// deriveKey ({groupKey, registrationId}: a group member's key as the Node SDKs
// sign with it, azure-iot-common's hmacHash; needs no DPS).
// Prints {result} or {error: {name, code (the HTTP status), message}} on one line.
'use strict';
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { hmacHash } = require('azure-iot-common/dist/authorization');

const [cs, op, argJson] = process.argv.slice(2);
const arg = argJson ? JSON.parse(argJson) : {};
const client = ProvisioningServiceClient.fromConnectionString(cs);

const ops = {
  createEnrollment: () => client.createOrUpdateIndividualEnrollment(arg),
  getEnrollment: () => client.getIndividualEnrollment(arg.id),
  deleteEnrollment: () => client.deleteIndividualEnrollment(arg.id).then(() => ({ responseBody: 'deleted' })),
  createGroup: () => client.createOrUpdateEnrollmentGroup(arg),
  getGroup: () => client.getEnrollmentGroup(arg.id),
  deleteGroup: () => client.deleteEnrollmentGroup(arg.id).then(() => ({ responseBody: 'deleted' })),
  queryEnrollments: () => client.createIndividualEnrollmentQuery({ query: '*' }, arg.pageSize).next(),
  queryGroups: () => client.createEnrollmentGroupQuery({ query: '*' }, arg.pageSize).next(),
  getRegistration: () => client.getDeviceRegistrationState(arg.id),
  deriveKey: async () => ({ responseBody: hmacHash(arg.groupKey, arg.registrationId) }),
};

async function main() {
  if (!ops[op]) throw new Error('unknown operation ' + op);
  try {
    const res = await ops[op]();
    process.stdout.write(JSON.stringify({ result: res.responseBody }) + '\n');
  } catch (err) {
    const statusCode = err.response && err.response.statusCode;
    process.stdout.write(JSON.stringify({ error: { name: err.constructor.name, code: String(statusCode), message: String(err.message) } }) + '\n');
  }
}

main().catch((err) => { process.stderr.write(String(err && err.stack) + '\n'); process.exit(1); });
