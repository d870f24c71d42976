"""The flow of a run: config -> registry lookups -> data -> strategy+model -> training ->
predictions -> metrics -> density -> store. Knows the contract, never a concrete plugin."""
