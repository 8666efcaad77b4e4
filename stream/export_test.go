package stream

// CheckExplicitNaming exports checkExplicitNaming to the tests.
var CheckExplicitNaming = checkExplicitNaming
