// Package core is the local hub's transport-neutral device core: who is
// online on which connection, direct-method calls waiting for their
// answers, C2D delivery and settlement, twin reads and reported patches,
// desired-property notifications, telemetry ingest and SAS token expiry.
//
// Device endpoints (MQTT today; AMQP and HTTPS) are thin adapters over
// it: they authenticate a device, then either attach a Session for a
// connection that stays up (Core.Attach, with a Conn the core writes
// through) or, for request-response transports, call the Core directly
// (Core.Ingest, Core.ReceiveC2D, Core.SettleC2D). The service side (the
// REST API and the AMQP front) calls Core.InvokeMethod,
// Core.DesiredChanged, Core.C2DEnqueued and Core.State.
//
// A device invoked by the back end, in one place: Core.InvokeMethod
// waits until the identity's Session listens for methods, registers a
// request id, calls Conn.SendMethod and waits for Session.MethodResponse
// (or the timeout).
//
//	c := core.New(ctx, &core.Options{Registry: reg, Telemetry: log})
//	s := c.Attach(core.Identity{DeviceID: "dev1"}, conn, core.AttachOptions{AuthMethod: "sas", Expiry: tok.Expiry()})
//	defer s.Detach(nil)
package core
