// Package amqp1 is the server side of AMQP 1.0 (OASIS AMQP 1.0 core),
// enough to emulate Azure IoT Hub and Event Hubs endpoints: protocol
// header and SASL negotiation (ANONYMOUS, PLAIN, MSSBCBS, or no SASL),
// connections with heartbeats and idle time-outs, several sessions per
// connection and several links per session, credit-based flow control,
// multi-frame messages in both directions, settlement in all settle modes,
// and typed errors for every way a peer can end a link, session or
// connection. Messages are github.com/Azure/go-amqp's *amqp.Message;
// those received are decoded by this package for their usual shapes
// (primitive property values, data sections) and by go-amqp for the
// rest, with the same result.
//
// The caller accepts network connections (TCP, TLS or WebSocket-wrapped)
// and calls Serve for each; a Handler, made per connection, decides on
// every link the peer attaches and then reads from (Link.Receive) or
// writes to (Link.Send) the links it accepted:
//
//	err := amqp1.Serve(ctx, conn, &amqp1.ConnOptions{
//		SASL:        &amqp1.SASLOptions{Authenticate: checkSASToken},
//		AllowNoSASL: true,
//		NewHandler: func(c *amqp1.Conn) amqp1.Handler {
//			return amqp1.HandlerFunc(func(ctx context.Context, l *amqp1.Link) error {
//				if l.Address() != "/messages/devicebound" {
//					return &amqp1.Error{Condition: amqp1.ErrCondNotFound}
//				}
//				go func() {
//					for {
//						d, err := l.Receive(ctx)
//						if err != nil {
//							return
//						}
//						enqueue(d.Message)
//						_ = d.Accept()
//					}
//				}()
//				return nil
//			})
//		},
//	})
//
// Values in maps (properties, filters, error info, annotations of the
// modified outcome) use these Go types: nil, bool, uint8, uint16, uint32,
// uint64, int8, int16, int32, int64, float32, float64, Char, time.Time
// (timestamp), UUID, []byte (binary), string, Symbol, []any (list),
// map[any]any (map), Described, and for arrays []Symbol, []string,
// []bool, []int32, []int64, []uint32, []uint64, []float64, []UUID,
// []time.Time or []any. Go int encodes as long. Decimal values decode
// to opaque byte arrays.
//
// The server only answers: it never begins sessions or attaches links
// itself. Not implemented: transactions, link recovery (resume and the
// unsettled map of attach are ignored), and server-side tracking of
// deliveries that are still unsettled when their link ends (they are
// forgotten). A hub that has already read bytes from the connection (to
// tell AMQP from MQTT or HTTP) must pass Serve a net.Conn whose Read
// returns those bytes first.
package amqp1
