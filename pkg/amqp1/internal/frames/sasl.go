package frames

import "github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"

// SASL outcome codes (part 5.3.3.6).
const (
	SASLOK      uint8 = 0
	SASLAuth    uint8 = 1
	SASLSys     uint8 = 2
	SASLSysPerm uint8 = 3
	SASLSysTemp uint8 = 4
)

// SASLMechanisms is the sasl-mechanisms frame.
type SASLMechanisms struct{ Mechanisms []encoding.Symbol }

func (o *SASLMechanisms) mandatory() uint32 { return 1 }

func (o *SASLMechanisms) append(b []byte) ([]byte, error) {
	f := openFields(b, codeSASLMechanisms)
	f.syms(o.Mechanisms)
	return f.close()
}

func (o *SASLMechanisms) parse(i int, r *encoding.Reader) (err error) {
	if i == 0 {
		o.Mechanisms, err = r.Symbols()
		return err
	}
	return r.Skip()
}

// SASLInit is the sasl-init frame.
type SASLInit struct {
	Mechanism       encoding.Symbol
	InitialResponse []byte
	Hostname        string
}

func (o *SASLInit) mandatory() uint32 { return 1 }

func (o *SASLInit) append(b []byte) ([]byte, error) {
	f := openFields(b, codeSASLInit)
	f.sym(o.Mechanism)
	if o.InitialResponse == nil {
		f.null()
	} else {
		f.bin(o.InitialResponse)
	}
	f.optStr(o.Hostname)
	return f.close()
}

func (o *SASLInit) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.Mechanism, err = r.Symbol()
	case 1:
		o.InitialResponse, err = r.Binary()
	case 2:
		o.Hostname, err = r.String()
	default:
		err = r.Skip()
	}
	return err
}

// SASLChallenge is the sasl-challenge frame.
type SASLChallenge struct{ Challenge []byte }

func (o *SASLChallenge) mandatory() uint32 { return 1 }

func (o *SASLChallenge) append(b []byte) ([]byte, error) {
	f := openFields(b, codeSASLChallenge)
	f.bin(o.Challenge)
	return f.close()
}

func (o *SASLChallenge) parse(i int, r *encoding.Reader) (err error) {
	if i == 0 {
		o.Challenge, err = r.Binary()
		return err
	}
	return r.Skip()
}

// SASLResponse is the sasl-response frame.
type SASLResponse struct{ Response []byte }

func (o *SASLResponse) mandatory() uint32 { return 1 }

func (o *SASLResponse) append(b []byte) ([]byte, error) {
	f := openFields(b, codeSASLResponse)
	f.bin(o.Response)
	return f.close()
}

func (o *SASLResponse) parse(i int, r *encoding.Reader) (err error) {
	if i == 0 {
		o.Response, err = r.Binary()
		return err
	}
	return r.Skip()
}

// SASLOutcome is the sasl-outcome frame.
type SASLOutcome struct {
	Code           uint8
	AdditionalData []byte
}

func (o *SASLOutcome) mandatory() uint32 { return 1 }

func (o *SASLOutcome) append(b []byte) ([]byte, error) {
	f := openFields(b, codeSASLOutcome)
	f.ubyte(o.Code)
	if o.AdditionalData == nil {
		f.null()
	} else {
		f.bin(o.AdditionalData)
	}
	return f.close()
}

func (o *SASLOutcome) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.Code, err = r.Ubyte()
	case 1:
		o.AdditionalData, err = r.Binary()
	default:
		err = r.Skip()
	}
	return err
}
