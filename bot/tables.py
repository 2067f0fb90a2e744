"""Imports every module that defines tables, so Alembic and create_all see them all."""

from bot.auth.models import LoginFailure, User, UserSession
from bot.catalog.models import Product, ProductVariant
from bot.convtests.models import ConversationTestResult, ConversationTestRow
from bot.handoff.models import AgentPresence, HelpdeskOutbox, Ticket, TicketMessage
from bot.privacy.models import PrivacyLog
from bot.relay.models import HeldMessage
from bot.shop.cart import CartItem
from bot.shop.models import (
    CrmProfile,
    Customer,
    Order,
    OrderAccessGrant,
    OrderItem,
    Preference,
    Refund,
    Return,
    Shipment,
    VerificationThrottle,
)
from bot.topics.models import Topic, TopicMember, TopicRun
from bot.training.models import IngestState, ModelActivation, ModelVersion, NluLabelEvent, NluMessage

__all__ = [
    "AgentPresence",
    "CartItem",
    "ConversationTestResult",
    "ConversationTestRow",
    "CrmProfile",
    "Customer",
    "HeldMessage",
    "HelpdeskOutbox",
    "IngestState",
    "LoginFailure",
    "ModelActivation",
    "ModelVersion",
    "NluLabelEvent",
    "NluMessage",
    "Order",
    "OrderAccessGrant",
    "OrderItem",
    "Preference",
    "PrivacyLog",
    "Product",
    "ProductVariant",
    "Refund",
    "Return",
    "Shipment",
    "Ticket",
    "TicketMessage",
    "Topic",
    "TopicMember",
    "TopicRun",
    "User",
    "UserSession",
    "VerificationThrottle",
]
