module github.com/amqp1kit/amqp1kit

go 1.26
