package config_test

import (
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Validation registers the routes on a throwaway Gin engine; keep Gin's
	// debug-mode banner and route listing out of the test output.
	gin.SetMode(gin.ReleaseMode)
	goleak.VerifyTestMain(m)
}
