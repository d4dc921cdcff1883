package hub

import (
	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/service"
)

// serviceClient makes a service client from the configured service
// connection string and CA file.
func serviceClient(f *cmdutil.Factory) (*service.Client, error) {
	cs, err := f.ServiceConnectionString()
	if err != nil {
		return nil, err
	}
	log, err := f.Logger()
	if err != nil {
		return nil, err
	}
	c, err := service.New(cs, &service.Options{CAFile: f.V.GetString(cmdutil.KeyCAFile), Logger: log, UserAgent: cmdutil.UserAgent()})
	if err != nil {
		return nil, cmdutil.Usagef("%v", err)
	}
	return c, nil
}
