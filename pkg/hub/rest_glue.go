package hub

import "net/http"

func (h *Hub) restHandler() http.Handler {
	return http.NotFoundHandler()
}
