// Package sas makes, parses and verifies Azure IoT Hub shared access
// signature (SAS) tokens.
//
// A token is "SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={policy}]".
// The signature is the HMAC-SHA256, under the base64-decoded shared
// access key, of the sr text as it appears in the token, a newline and
// the se text. Clients disagree on how they percent-encode sr, so
// Verify works over the literal text and Covers compares scopes after
// decoding, by path segment.
//
// Signing a device token:
//
//	key, err := sas.DecodeKey(cs.SharedAccessKey)
//	if err != nil { ... }
//	tok, err := sas.Sign(sas.DeviceResource("myhub.azure-devices.net", "dev1"), key,
//		&sas.SignOptions{TTL: time.Hour})
//	password := tok.Encode()
//
// Verifying one on the hub side:
//
//	tok, err := sas.Parse(password)
//	if err == nil { err = sas.Verify(tok, key, time.Now()) }
//	if err == nil && !sas.Covers(tok.Scope(), "myhub.azure-devices.net/devices/dev1") { err = sas.ErrScope }
//
// Token.String and Token.LogValue redact the signature.
package sas
