package device

import "fmt"

// newAMQP makes the AMQP 1.0 client.
func newAMQP(*Options) (Conn, error) {
	return nil, fmt.Errorf("%w: the AMQP transport is not in this build yet; use mqtt or https", ErrNotSupported)
}
