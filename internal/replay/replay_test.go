package replay

import (
	"bufio"
	"io"
	"net"
	"testing"
)

func TestReplaysThenReads(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		server.Write([]byte("CONNECT rest"))
		server.Write([]byte(" and more"))
		server.Close()
	}()
	r := bufio.NewReaderSize(client, 16)
	if peek, err := r.Peek(4); err != nil || string(peek) != "CONN" {
		t.Fatalf("Peek = %q, %v", peek, err)
	}
	c := New(client, r)
	rc, ok := c.(*Conn)
	if !ok {
		t.Fatalf("New = %T; want *Conn with the buffered bytes", c)
	}
	if rc.NetConn() != client {
		t.Error("NetConn is not the connection under it")
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "CONNECT rest and more" {
		t.Fatalf("ReadAll = %q, %v; want every byte once, in order", got, err)
	}
}

func TestNothingBufferedIsTheConnItself(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	if c := New(client, bufio.NewReader(client)); c != client {
		t.Fatalf("New = %T; want the connection itself", c)
	}
}
