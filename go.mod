module github.com/causeway-go/causeway

go 1.26.0

require github.com/reugn/go-streams v0.13.0

require (
	golang.org/x/net v0.62.0
	golang.org/x/text v0.43.0 // indirect
)
