package frames

import "github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"

// Descriptor codes (AMQP 1.0 parts 2, 3 and 5).
const (
	codeOpen           uint64 = 0x10
	codeBegin          uint64 = 0x11
	codeAttach         uint64 = 0x12
	codeFlow           uint64 = 0x13
	codeTransfer       uint64 = 0x14
	codeDisposition    uint64 = 0x15
	codeDetach         uint64 = 0x16
	codeEnd            uint64 = 0x17
	codeClose          uint64 = 0x18
	codeError          uint64 = 0x1d
	codeReceived       uint64 = 0x23
	codeAccepted       uint64 = 0x24
	codeRejected       uint64 = 0x25
	codeReleased       uint64 = 0x26
	codeModified       uint64 = 0x27
	codeSource         uint64 = 0x28
	codeTarget         uint64 = 0x29
	codeSASLMechanisms uint64 = 0x40
	codeSASLInit       uint64 = 0x41
	codeSASLChallenge  uint64 = 0x42
	codeSASLResponse   uint64 = 0x43
	codeSASLOutcome    uint64 = 0x44
)

// symbolic maps the symbolic descriptors to their codes.
var symbolic = map[encoding.Symbol]uint64{
	"amqp:open:list":            codeOpen,
	"amqp:begin:list":           codeBegin,
	"amqp:attach:list":          codeAttach,
	"amqp:flow:list":            codeFlow,
	"amqp:transfer:list":        codeTransfer,
	"amqp:disposition:list":     codeDisposition,
	"amqp:detach:list":          codeDetach,
	"amqp:end:list":             codeEnd,
	"amqp:close:list":           codeClose,
	"amqp:error:list":           codeError,
	"amqp:received:list":        codeReceived,
	"amqp:accepted:list":        codeAccepted,
	"amqp:rejected:list":        codeRejected,
	"amqp:released:list":        codeReleased,
	"amqp:modified:list":        codeModified,
	"amqp:source:list":          codeSource,
	"amqp:target:list":          codeTarget,
	"amqp:sasl-mechanisms:list": codeSASLMechanisms,
	"amqp:sasl-init:list":       codeSASLInit,
	"amqp:sasl-challenge:list":  codeSASLChallenge,
	"amqp:sasl-response:list":   codeSASLResponse,
	"amqp:sasl-outcome:list":    codeSASLOutcome,
}
