"""Imports every module that defines tables, so Alembic and create_all see them all."""

from bot.auth.tables import LoginFailure, User, UserSession
from bot.catalog.tables import Product, ProductVariant
from bot.convtests.tables import ConversationTestResult, ConversationTestRow
from bot.handoff.tables import AgentPresence, HelpdeskOutbox, Ticket, TicketMessage
from bot.held_messages.tables import HeldMessage
from bot.privacy.tables import PrivacyLog
from bot.shop.cart import CartItem
from bot.shop.tables import (
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
from bot.topics.tables import Topic, TopicMember, TopicRun
from bot.training.tables import IngestState, ModelActivation, ModelVersion, NluLabelEvent, NluMessage

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
