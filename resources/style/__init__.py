"""Qt style sheets of the GUI."""
