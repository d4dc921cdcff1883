package simulate

import (
	"fmt"
	"sync"

	"github.com/iotctl/iotctl/pkg/device"
)

// DefaultAMQPDevicesPerConnection is Options.DevicesPerConnection's
// default for an AMQP fleet. A hundred devices on a connection make
// the connection's own cost (its TLS state, buffers and goroutines) a
// small part of each device's, while a lost connection sends only a
// hundred devices reconnecting at once, and a fleet of 100,000 needs
// 1,000 connections: far below the open-files limit and the ephemeral
// ports of one source address. The most is
// device.MaxDevicesPerAMQPConnection (995, IoT Hub's tokens per
// connection).
const DefaultAMQPDevicesPerConnection = 100

// amqpPool gives the fleet's devices their shared AMQP connections:
// device i is on connection i / per (one per hub, when DPS assigns
// devices to several). Every connection runs on the lean AMQP engine
// (pkg/amqp1/client); a telemetry-only fleet's devices attach only
// their telemetry link (device.NewAMQPSharedTelemetry), the others
// their C2D, methods and twin links too (device.NewAMQPShared).
type amqpPool struct {
	per           int
	telemetryOnly bool

	mu    sync.Mutex
	conns map[amqpPoolKey]*device.AMQPShared
}

type amqpPoolKey struct {
	group int
	host  string
}

func newAMQPPool(per int, telemetryOnly bool) *amqpPool {
	return &amqpPool{per: per, telemetryOnly: telemetryOnly, conns: map[amqpPoolKey]*device.AMQPShared{}}
}

// group is the connection number of device i.
func (p *amqpPool) group(i int) int { return i / p.per }

// open makes device i's client on its group's connection.
func (p *amqpPool) open(i int, o *device.Options) (Conn, error) {
	k := amqpPoolKey{group: p.group(i), host: o.HostName + "|" + o.GatewayHostName}
	p.mu.Lock()
	s := p.conns[k]
	if s == nil {
		newShared := device.NewAMQPShared
		if p.telemetryOnly {
			newShared = device.NewAMQPSharedTelemetry
		}
		var err error
		if s, err = newShared(p.per); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.conns[k] = s
	}
	p.mu.Unlock()
	c, err := s.Open(o)
	if err != nil {
		return nil, fmt.Errorf("shared AMQP connection %d: %w", k.group, err)
	}
	return c, nil
}

// close closes every connection; the devices are closed before.
func (p *amqpPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.conns {
		s.Close()
		delete(p.conns, k)
	}
}
