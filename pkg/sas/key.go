package sas

import (
	"crypto/rand"
	"encoding/base64"
)

// NewKey returns a new random shared access key: 32 bytes from
// crypto/rand in standard base64, as IoT Hub makes them.
func NewKey() string {
	var b [32]byte
	// crypto/rand.Read never fails on the platforms Go supports; it
	// crashes the program rather than return an error.
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}
