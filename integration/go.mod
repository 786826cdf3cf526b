module github.com/sidecarkit/sidecarkit/integration

go 1.26
