package hub

import "net"

// serveAMQP serves an AMQP connection.
func (h *Hub) serveAMQP(c net.Conn) {
	h.log.Warn("amqp connection closed: this hub does not serve AMQP yet", "remote", c.RemoteAddr().String())
	_ = c.Close()
}
