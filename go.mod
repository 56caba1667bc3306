module github.com/amqp1kit/amqp1kit

go 1.26.0

require (
	github.com/Azure/go-amqp v1.7.0
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875
	github.com/stretchr/testify v1.12.1
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
