module github.com/causeway-go/causeway

go 1.26.0

require github.com/reugn/go-streams v0.13.0

require go.uber.org/goleak v1.3.0 // indirect
