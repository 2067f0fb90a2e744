"""The development stack behind `make run` and `python -m bot serve`: Rasa, the action server and the gateway
as one supervised group of processes (:mod:`devstack.stack`); tests and the load benchmark start it too."""
