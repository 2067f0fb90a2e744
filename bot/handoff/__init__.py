"""Live human handoff: tickets with a context packet, priority, support hours, helpdesk delivery.

``tickets`` is the API the escalation action and the agent inbox share; ``delivery`` sends
tickets to external helpdesks through an outbox table; ``agent_inbox`` is the gateway's service
over tickets, live pushes and the Rasa client the agents' actions use (only the gateway imports it).
"""
