"""UI strings in zh-CN (the default: operators read Chinese) and English."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh-CN", "en"]

STATUS_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "reported": "上报",
        "registered": "立案",
        "dispatched": "派遣",
        "on_scene": "处置中",
        "resolved": "已处置",
        "closed": "结案",
        "cancelled": "作废",
    },
    "en": {
        "reported": "Reported",
        "registered": "Registered",
        "dispatched": "Dispatched",
        "on_scene": "On scene",
        "resolved": "Resolved",
        "closed": "Closed",
        "cancelled": "Cancelled",
    },
}

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "dispute": "矛盾纠纷",
        "public_security": "治安",
        "traffic": "交通",
        "fire_hazard": "消防隐患",
        "environment": "环境卫生",
        "noise": "噪音扰民",
        "illegal_construction": "违法建设",
        "municipal_facility": "市政设施",
        "market_order": "市场秩序",
        "population": "流动人口",
        "public_service": "便民服务",
        "other": "其他",
    },
    "en": {
        "dispute": "Dispute",
        "public_security": "Public security",
        "traffic": "Traffic",
        "fire_hazard": "Fire hazard",
        "environment": "Environment",
        "noise": "Noise",
        "illegal_construction": "Illegal construction",
        "municipal_facility": "Municipal facility",
        "market_order": "Market order",
        "population": "Floating population",
        "public_service": "Public service",
        "other": "Other",
    },
}

UNIT_STATUS_LABELS: dict[str, dict[str, str]] = {
    "zh-CN": {"available": "空闲", "busy": "执勤中", "off_duty": "离岗"},
    "en": {"available": "Available", "busy": "Busy", "off_duty": "Off duty"},
}

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "app_title": "联勤指挥中心",
        "wall_title": "联勤指挥中心 · 实时态势",
        "legend_title": "案件状态",
        "overdue": "超期",
        "units": "力量",
        "connecting": "连接中…",
        "live": "实时",
        "stale": "数据延迟",
        "offline": "连接中断",
        "seconds_ago": "秒前",
        "not_found": "页面不存在",
        "cases_on_map": "今日案件",
    },
    "en": {
        "app_title": "Lianqin Command Center",
        "wall_title": "Lianqin Command Center · Live",
        "legend_title": "Case status",
        "overdue": "Overdue",
        "units": "Units",
        "connecting": "Connecting…",
        "live": "Live",
        "stale": "Data delayed",
        "offline": "Disconnected",
        "seconds_ago": "s ago",
        "not_found": "Page not found",
        "cases_on_map": "Cases today",
    },
}


def t(lang: str, key: str) -> str:
    return TEXT.get(lang, TEXT["zh-CN"]).get(key, TEXT["zh-CN"].get(key, key))


def status_label(lang: str, status: str) -> str:
    return STATUS_LABELS.get(lang, STATUS_LABELS["zh-CN"]).get(status, status)
