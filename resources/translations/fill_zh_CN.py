#!/usr/bin/env python3
"""Fills keyrelay_zh_CN.ts with the Simplified Chinese translations below.

Run `lupdate` first (see resources/translations/README.md), then this script. Strings without an entry stay
unfinished and are listed on stderr.
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ZH = {
    "test: %1": "测试：%1",
    "Tokens today": "今日令牌",
    "stopped working": "已停止工作",
    "works again": "已恢复可用",
    "Keys and usage": "密钥与用量",
    "no limit": "不限",
    "Count the tokens of streamed answers (asks the upstream for them; the client's stream stays as it asked)":
    "统计流式回答的令牌数（向上游请求用量；客户端收到的流保持原样）",
    "Re-check an invalid key every:": "无效密钥的重新检查间隔：",
    "Requests per key at once:": "每个密钥的同时请求数：",
    " s": " 秒",
    "KeyRelay: key %1 works again": "KeyRelay：密钥 %1 已恢复可用",
    "It is back in rotation.": "它已重新加入轮换。",
    "rate-limited until %1": "限流中，直到 %1",
    "invalid (re-checked %1)": "无效（%1 重新检查）",
    "quota used up (re-checked %1)": "额度已用完（%1 重新检查）",
    "quota used up": "额度已用完",
    "&Allow this website": "允许此网站(&A)",
    "Let the website of the selected blocked request use KeyRelay": "允许所选被拦截请求的网站使用 KeyRelay",
    "Allow %1": "允许 %1",
    "&Allow %1": "允许 %1(&A)",
    "Could not allow %1: %2": "无法允许 %1：%2",
    "Security": "安全",
    "Websites (origins) that may use KeyRelay from your browser, separated by commas. Pages on this computer "
    "(localhost), browser extensions and desktop apps are always allowed.":
    "可以在浏览器中使用 KeyRelay 的网站（来源），用逗号分隔。本机页面（localhost）、浏览器扩展和桌面应用始终允许。",
    "Pages on this computer (localhost), browser extensions and desktop apps are always allowed. A blocked website "
    "shows in the log, where one click allows it.":
    "本机页面（localhost）、浏览器扩展和桌面应用始终允许。被拦截的网站会显示在日志中，点击一下即可允许。",
    "Allow any website (not recommended)": "允许任何网站（不推荐）",
    "Warning: every website open in your browser could then use your API keys and spend your money.":
    "警告：这样浏览器中打开的任何网站都能使用你的 API 密钥并花费你的钱。",
    "none: any program on this computer may use KeyRelay": "无：本机任何程序都可以使用 KeyRelay",
    "When set, clients must send this token as their API key. Required for listening on a network address or "
    "behind a reverse proxy.":
    "设置后，客户端必须把此令牌作为 API 密钥发送。在网络地址上监听或位于反向代理之后时必须设置。",
    "&Generate": "生成(&G)",
    "Cop&y": "复制(&Y)",
    "Host names a reverse proxy sends (besides localhost); needs a client token.":
    "反向代理发送的主机名（localhost 以外）；需要客户端令牌。",
    "Allowed websites:": "允许的网站：",
    "Client access token:": "客户端访问令牌：",
    "Reverse-proxy host names:": "反向代理主机名：",
    "The client access token must be at least 16 characters without spaces (use Generate).":
    "客户端访问令牌至少需要 16 个字符且不含空格（可使用“生成”）。",
    '"%1" is not a website origin.': "“%1”不是网站来源。",
    "%1 may now use KeyRelay.": "%1 现在可以使用 KeyRelay。",
    "KeyRelay is not running": "KeyRelay 未在运行",
    "KeyRelay: key %1 stopped working": "KeyRelay：密钥 %1 已失效",
    "Problems found at start-up: %1": "启动时发现问题：%1",
    'KeyRelay already runs in the background with the settings in %1%2, as "keyrelay --headless" or the '
    "keyrelay service. Stop it first (systemctl --user stop keyrelay), then start the tray app again.":
    "KeyRelay 已在后台使用 %1%2 中的设置运行（“keyrelay --headless”或 keyrelay 服务）。"
    "请先停止它（systemctl --user stop keyrelay），再启动托盘程序。",
    "Cannot remove %1": "无法删除 %1",
    "Cannot create %1": "无法创建 %1",
    "Cannot write %1: %2": "无法写入 %1：%2",
    "ok (tested)": "正常（已测试）",
    "unknown": "未知",
    "ok": "正常",
    "rate-limited": "限流中",
    "invalid": "无效",
    "testing…": "测试中…",
    "invalid key: %1": "密钥无效：%1",
    "no network: %1": "网络不可用：%1",
    "upstream error: %1": "上游错误：%1",
    "never": "从未",
    "Skipped until %1": "暂停使用，直到 %1",
    "Double-click to rename": "双击重命名",
    "Label": "名称",
    "Key": "密钥",
    "Enabled": "启用",
    "State": "状态",
    "Requests": "请求数",
    "Errors": "错误数",
    "Last used": "最近使用",
    "Test": "测试",
    "Test result": "测试结果",
    "HTTP %1": "HTTP %1",
    "HTTP %1: %2": "HTTP %1：%2",
    "&Add keys": "添加密钥(&A)",
    "&Remove selected": "删除所选(&R)",
    "Paste API keys here: one per line, separated by commas, or as k1|k2|k3":
        "在此粘贴 API 密钥：每行一个、用逗号分隔，或写成 k1|k2|k3",
    "Keys are stored in %1 (readable by you only), never in the settings file.":
        "密钥保存在 %1（仅你本人可读），不会写入设置文件。",
    "Keys are kept in memory only.": "密钥仅保存在内存中。",
    "Add the pasted keys (Ctrl+Enter)": "添加粘贴的密钥（Ctrl+Enter）",
    "No key found in the pasted text.": "粘贴的文本中没有找到密钥。",
    "Added %n key(s).": "已添加 %n 个密钥。",
    "Added %1 of %2 key(s); the others were already in the list.": "已添加 %2 个密钥中的 %1 个；其余的已在列表中。",
    "Removed %n key(s).": "已删除 %n 个密钥。",
    "The keys could not be saved: %1": "无法保存密钥：%1",
    "Ask the upstream for its model list with this key": "用此密钥向上游请求模型列表",
    "%1 ms": "%1 毫秒",
    "yes": "是",
    "no": "否",
    "Time": "时间",
    "Method": "方法",
    "Path": "路径",
    "Model": "模型",
    "Status": "状态码",
    "Latency": "延迟",
    "Streamed": "流式",
    "Bytes": "字节",
    "Tokens": "Token 数",
    "Error": "错误",
    "C&lear": "清空(&L)",
    "&Export CSV…": "导出 CSV(&E)…",
    "Filter: path, model, key, status, error…": "筛选：路径、模型、密钥、状态码、错误…",
    "All requests": "全部请求",
    "Errors only": "仅错误",
    "&Copy row": "复制行(&C)",
    "%n request(s) in the log (the newest %1 are kept)": "日志中有 %n 条请求（保留最新的 %1 条）",
    "%1 of %2 request(s) shown": "显示 %2 条请求中的 %1 条",
    "Export log": "导出日志",
    "CSV files (*.csv)": "CSV 文件 (*.csv)",
    "Could not write %1: %2": "无法写入 %1：%2",
    "KeyRelay": "KeyRelay",
    "&Keys": "密钥(&K)",
    "&Log": "日志(&L)",
    "&Settings": "设置(&S)",
    "&Copy URL": "复制地址(&C)",
    "Copy the endpoint URL; use it as the API base URL in your client":
        "复制本地端点地址；在客户端中把它用作 API 基础地址",
    "The proxy could not start: %1": "代理无法启动：%1",
    "Requests today: %1": "今日请求：%1",
    "Copied %1 to the clipboard.": "已将 %1 复制到剪贴板。",
    "The proxy is stopped; clients get \"connection refused\".": "代理已停止；客户端会收到“连接被拒绝”。",
    "● Running": "● 运行中",
    "S&top": "停止(&T)",
    "● Stopped": "● 已停止",
    "S&tart": "启动(&T)",
    "● Not running": "● 未运行",
    "Local endpoint": "本地端点",
    "127.0.0.1 keeps the proxy reachable from this computer only": "127.0.0.1 表示只有本机可以访问代理",
    "any free port": "任意空闲端口",
    "Port:": "端口：",
    "Listen address:": "监听地址：",
    "Upstream": "上游",
    "No proxy": "不使用代理",
    "System proxy settings": "使用系统代理设置",
    "HTTP proxy": "HTTP 代理",
    "SOCKS5 proxy": "SOCKS5 代理",
    "host": "主机",
    "user (optional)": "用户名（可选）",
    "password (optional)": "密码（可选）",
    "e.g. /release, /openai": "例如 /release, /openai",
    " s": " 秒",
    "Connect:": "连接：",
    "Idle:": "空闲：",
    "Base URL:": "基础地址：",
    "Network proxy:": "网络代理：",
    "Strip path prefixes:": "去除路径前缀：",
    "Timeouts:": "超时：",
    "Long conversations": "长对话",
    "Move the system message close to the end of long conversations": "在长对话中把系统消息移到靠近末尾的位置",
    "When there are more than": "当消息数多于",
    "messages, keep": "条时，让它后面保留",
    "messages after it": "条消息",
    "Note: moving the system message defeats the upstream's prompt caching of long conversations.":
        "注意：移动系统消息会使上游对长对话的提示词缓存失效。",
    "Before:": "调整前：",
    "After:": "调整后：",
    "Desktop": "桌面",
    "Start minimized to the tray": "启动时最小化到托盘",
    "Start KeyRelay when I log in": "登录时启动 KeyRelay",
    "&Apply": "应用(&A)",
    "Re&vert": "还原(&V)",
    "Upstream base URL: %1": "上游基础地址：%1",
    "Enter the network proxy's host name.": "请输入网络代理的主机名。",
    "The settings file %1 could not be written.": "无法写入设置文件 %1。",
    "Settings saved, but the proxy could not start: %1": "设置已保存，但代理无法启动：%1",
    "Settings applied.": "设置已应用。",
    "%1 (unchanged)": "%1（未改变）",
    "Open KeyRelay": "打开 KeyRelay",
    "Start proxy": "启动代理",
    "Copy endpoint URL": "复制端点地址",
    "Quit KeyRelay": "退出 KeyRelay",
    "Stop proxy": "停止代理",
    "KeyRelay: running on %1": "KeyRelay：运行于 %1",
    "KeyRelay: stopped": "KeyRelay：已停止",
    "KeyRelay: not running (%1)": "KeyRelay：未运行（%1）",
    "%n request(s) today": "今日 %n 条请求",
    "Not applied: %1": "未应用：%1",
    # Issue 15, data that must never be lost: undo of removals, the notice banner, where the keys are.
    "Removed all %n key(s).": "已删除全部 %n 个密钥。",
    "&Undo": "撤销(&U)",
    "Put the removed keys back (Ctrl+Z)": "恢复已删除的密钥（Ctrl+Z）",
    "Undo remove": "撤销删除",
    "Put back %n key(s).": "已恢复 %n 个密钥。",
    "Dismiss": "关闭",
    "Dismiss: %1": "关闭：%1",
    "(empty)": "（空）",
    '• Line %1: %2 = "%3" is not valid%4; KeyRelay uses %5 instead.':
    "• 第 %1 行：%2 = “%3” 无效%4；KeyRelay 改用 %5。",
    '• %1 = "%2" is not valid%3; KeyRelay uses %4 instead.': "• %1 = “%2” 无效%3；KeyRelay 改用 %4。",
    "The file as it was is kept in %1. Correct the values on the Settings page or in the file.":
    "原文件已保留为 %1。请在“设置”页或文件中更正这些值。",
    "There are problems with the settings file %1:": "设置文件 %1 有问题：",
    "%n setting(s) in %1 could not be used and were ignored:": "%1 中有 %n 项设置无法使用，已被忽略：",
    "The system keychain could not store the keys (%1), so they are stored in %2 instead, readable only by you.":
    "系统钥匙串无法保存密钥（%1），因此密钥改存于 %2，仅你本人可读。",
    "KeyRelay: keys saved in a file": "KeyRelay：密钥已保存到文件",
    "The system keychain could not store your keys, so KeyRelay saved them in %1 (readable only by you). They are "
    "kept after a restart. The keychain said: %2":
    "系统钥匙串无法保存你的密钥，因此 KeyRelay 已将其保存到 %1（仅你本人可读）。重启后密钥仍在。钥匙串的回复：%2",
    "KeyRelay: proxy password saved in a file": "KeyRelay：代理密码已保存到文件",
    "The system keychain could not store the upstream proxy password, so KeyRelay saved it in %1 (readable only by "
    "you). The keychain said: %2":
    "系统钥匙串无法保存上游代理密码，因此 KeyRelay 已将其保存到 %1（仅你本人可读）。钥匙串的回复：%2",
    "Your keys are not saved: they are in memory only and will be lost when KeyRelay quits.":
    "你的密钥尚未保存：它们只在内存中，KeyRelay 退出时将会丢失。",
    "KeyRelay tries again at every change of the key list.": "密钥列表每次变化时，KeyRelay 都会重试保存。",
    "The keys are in memory only and will be lost when KeyRelay quits (%1).":
    "密钥只在内存中，KeyRelay 退出时将会丢失（%1）。",
    # Issue 15: one service state, running with problems, pending settings, keyboard and screen readers.
    "API keys to add": "要添加的 API 密钥",
    "Paste API keys: one per line, separated by commas, or as k1|k2|k3. Ctrl+Enter adds them.":
    "粘贴 API 密钥：每行一个、用逗号分隔或写成 k1|k2|k3。按 Ctrl+Enter 添加。",
    "API keys": "API 密钥",
    "Arrow keys move between keys and columns; F2 edits a label, Space switches a key on or off, Enter on the "
    "Test column tests the key.":
    "方向键在密钥和列之间移动；F2 编辑标签，空格键启用或停用密钥，在“测试”列按 Enter 测试该密钥。",
    "Test key %1": "测试密钥 %1",
    "Requests sent upstream with one of your keys today, as on the Usage page":
    "今天用你的密钥发往上游的请求数，与“用量”页相同",
    "Close window": "关闭窗口",
    "● Running, with problems": "● 运行中，但有问题",
    "The upstream is failing: %1 of the last %2 requests failed (latest: %3).":
    "上游出现故障：最近 %2 个请求中有 %1 个失败（最近一次：%3）。",
    "No key is enabled: KeyRelay refuses every request. Enable a key on the Keys page.":
    "没有启用的密钥：KeyRelay 会拒绝所有请求。请在“密钥”页启用一个密钥。",
    "%1 of %2 enabled keys cannot be used now (invalid, quota used up or rate-limited); see the Keys page.":
    "%2 个已启用的密钥中有 %1 个当前无法使用（无效、额度已用完或被限流）；请查看“密钥”页。",
    "Unsaved changes": "有未保存的更改",
    "Apply stores and uses the changes; Revert drops them": "“应用”会保存并使用这些更改；“还原”会丢弃它们",
    "Drop the changes not applied yet": "丢弃尚未应用的更改",
    "Store the changes and use them at once": "保存更改并立即使用",
    "Listen address": "监听地址",
    "Listen port": "监听端口",
    "Network proxy": "网络代理",
    "Network proxy host": "网络代理主机",
    "Network proxy port": "网络代理端口",
    "Network proxy user": "网络代理用户名",
    "Network proxy password": "网络代理密码",
    "Connect timeout": "连接超时",
    "Idle timeout": "空闲超时",
    "Move the system message when there are more messages than": "消息数超过此值时移动系统消息",
    "Messages to keep after the system message": "系统消息之后保留的消息数",
    "Client access token": "客户端访问令牌",
    "The settings have changes that are not applied.": "设置有尚未应用的更改。",
    "Apply them now, or discard them?": "现在应用，还是丢弃？",
    "KeyRelay: running on %1, with problems": "KeyRelay：运行于 %1，但有问题",
    "KeyRelay: not running": "KeyRelay：未运行",
    "Filter the log": "筛选日志",
    # Issue 15 (key states, log, core messages shown in the window).
    "the upstream %1": "上游 %1",
    "the HTTP proxy %1": "HTTP 代理 %1",
    "the SOCKS5 proxy %1": "SOCKS5 代理 %1",
    "the network proxy": "网络代理",
    "%1 is not an allowed website (allow it here or under Settings › Security)":
    "%1 不是允许的网站（可在此处或“设置 › 安全”中允许）",
    "the request names more than one website (Origin); KeyRelay serves none of them":
    "请求中包含多个网站来源（Origin）；KeyRelay 不为其中任何一个提供服务",
    "a request from another website without an Origin (such as an image or script tag); KeyRelay does not serve it":
    "来自其他网站且没有 Origin 的请求（例如图片或脚本标签）；KeyRelay 不提供服务",
    "host \"%1\" is not this computer; KeyRelay only serves local clients (a reverse proxy's host name can be "
    "added under Settings › Security)":
    "主机“%1”不是本机；KeyRelay 只为本机客户端服务（反向代理的主机名可在“设置 › 安全”中添加）",
    "the client did not send KeyRelay's client access token as its API key":
    "客户端没有把 KeyRelay 的客户端访问令牌作为 API 密钥发送",
    "method not supported by KeyRelay": "KeyRelay 不支持此方法",
    "KeyRelay is shutting down": "KeyRelay 正在关闭",
    "KeyRelay is serving its maximum of %1 connections; retry shortly":
    "KeyRelay 已达到最多 %1 个连接；请稍后重试",
    "the client closed the connection": "客户端关闭了连接",
    "response cut off: %1": "响应被中断：%1",
    "nothing came from the upstream for %1 s": "上游 %1 秒内没有发送任何数据",
    "the upstream refused the key": "上游拒绝了此密钥",
    "the key's quota is used up": "此密钥的额度已用完",
    "429 rate limited": "429 限流",
    "re-check: %1": "重新检查：%1",
    "%1 refused the connection (is it running?)": "%1 拒绝了连接（它在运行吗？）",
    "%1 refused the connection": "%1 拒绝了连接",
    "%1 was not found (its host name does not resolve)": "找不到 %1（无法解析其主机名）",
    "%1 closed the connection before %2 answered": "%1 在 %2 应答前关闭了连接",
    "%1 closed the connection before answering": "%1 在应答前关闭了连接",
    "%1 did not answer in time": "%1 未及时应答",
    "%1 refused the credentials (user \"%2\")": "%1 拒绝了凭据（用户“%2”）",
    "%1 asks for credentials and none are set (give them in the upstream proxy setting: "
    "http://user:password@host:port)":
    "%1 需要凭据，但未设置（请在上游代理设置中填写：http://user:password@host:port）",
    "TLS with %1 failed: %2": "与 %1 的 TLS 连接失败：%2",
    "could not connect to the upstream %1 within %2 s": "无法在 %2 秒内连接到上游 %1",
    "the upstream sent nothing for %1 s": "上游 %1 秒内没有发送任何数据",
    "invalid, next check %1": "无效，下次检查 %1",
    "disabled": "已停用",
    "invalid, checking": "无效，正在检查",
    "KeyRelay does not use this key while it is not enabled.": "此密钥未启用时，KeyRelay 不会使用它。",
    "Skipped until %1 (the upstream's rate limit).": "在 %1 之前跳过（上游限流）。",
    "The upstream refused this key. It gets no requests; at %1 KeyRelay checks it again (a request for the model "
    "list, no tokens), or press Test.":
    "上游拒绝了此密钥。它不会收到请求；KeyRelay 将在 %1 再次检查（请求模型列表，不消耗令牌），也可以点击“测试”。",
    "The upstream refused this key. KeyRelay is checking it again.": "上游拒绝了此密钥。KeyRelay 正在重新检查。",
    "The key's quota is used up. It gets no requests until %1, then one trial request.":
    "此密钥的额度已用完。在 %1 之前不会收到请求，之后会试用一次。",
    "The key's quota is used up. The next request tries it once.": "此密钥的额度已用完。下一个请求会试用一次。",
    "Reason: %1": "原因：%1",
    "no answer: %1": "无应答：%1",
    "earlier: %1": "较早：%1",
    "Tested at %1.": "测试于 %1。",
    "The key's state has changed since this test; the State column is newer.":
    "此次测试之后密钥状态已改变；“状态”列的信息更新。",
    "The key is back in the rotation.": "此密钥已重新加入轮换。",
    "%1 (double-click to rename)": "%1（双击重命名）",
    "Double-click to name this key": "双击为此密钥命名",
    "Allowing %1: its next request shows here whether it went through.":
    "正在允许 %1：它的下一个请求会在这里显示是否通过。",
    "%1 may now use KeyRelay; its next requests go through.": "%1 现在可以使用 KeyRelay；它之后的请求会被放行。",
    "%n key event(s)": "%n 条密钥事件",
    # Issue 17: usage per provider.
    "Key id %1, provider %2": "密钥 ID %1，提供商 %2",
    # Providers (issue 17)
    "Provider": "提供商",
    "The provider whose keys this page shows, edits and tests": "本页显示、编辑和测试其密钥的提供商",
    "Pro&vider:": "提供商(&V)：",
    "The keys of %1 are stored in %2 (readable by you only), never in the settings file.":
    "%1 的密钥保存在 %2（仅你可读），从不写入设置文件。",
    "The keys of %1 are kept in memory only.": "%1 的密钥仅保存在内存中。",
    "→ fallback": "→ 回退",
    "→ fallback: %1": "→ 回退：%1",
    "This try failed before any answer reached the client; the next provider was tried.":
    "这次尝试在任何回答到达客户端之前失败；已改试下一个提供商。",
    "&Providers": "提供商(&P)",
    "The model list is larger than %1 MB.": "模型列表超过 %1 MB。",
    "HTTP %1, but the answer is not a model list.": "HTTP %1，但回答不是模型列表。",
    "default route": "默认路由",
    "off": "已停用",
    "The default: requests no other provider claims go here.": "默认提供商：其他提供商都不接的请求发到这里。",
    "Enter the base URL.": "请输入基础 URL。",
    "Base URL: %1": "基础 URL：%1",
    "Aliases: each entry is NAME=MODEL, each name once (%1).": "别名：每项写作 名称=模型，每个名称只能出现一次（%1）。",
    "Network proxy: %1": "网络代理：%1",
    'The id must be 1 to 40 of a-z, 0-9, _ and -, starting with a letter or digit (not "p").':
    "ID 须为 1 到 40 个 a-z、0-9、_ 和 - 字符，以字母或数字开头（不能是“p”）。",
    'Another provider has the id "%1".': "另一个提供商已使用 ID“%1”。",
    "A provider cannot fall back to itself.": "提供商不能回退到自身。",
    'Fallback "%1" is not a provider in the list.': "回退目标“%1”不在提供商列表中。",
    "provider %1": "提供商 %1",
    "Failed: %1": "失败：%1",
    "It answers, with no models listed.": "有应答，但没有列出任何模型。",
    "%n model(s): %1": "%n 个模型：%1",
    "Providers in routing order": "按路由顺序排列的提供商",
    "Requests go to the first provider whose models, aliases or id match; the first one gets everything else.":
    "请求发往模型、别名或 ID 匹配的第一个提供商；其余请求都发往列表中的第一个。",
    "&Add": "添加(&A)",
    "Custom OpenAI-compatible": "自定义（OpenAI 兼容）",
    "Custom": "自定义",
    "&Remove": "移除(&R)",
    "Move &up": "上移(&U)",
    "Move do&wn": "下移(&W)",
    "Earlier in the routing order; the first provider is the default": "在路由顺序中靠前；第一个提供商是默认提供商",
    "Later in the routing order": "在路由顺序中靠后",
    'Carry &over the current upstream as provider "default"': "将当前上游沿用为提供商“default”(&O)",
    "Its keys stay where they are (the Keys page) and serve it": "它的密钥保持原位（密钥页）并为它服务",
    'a-z, 0-9, _ and -; clients can name it as "<id>/<model>" or use /p/<id>/':
    "a-z、0-9、_ 和 -；客户端可写作“<id>/<模型>”或使用 /p/<id>/",
    "OpenAI-compatible": "OpenAI 兼容",
    "Anthropic": "Anthropic",
    "e.g. gpt-4o*, o3-mini (patterns with *)": "例如 gpt-4o*, o3-mini（可用 * 通配）",
    "The models this provider serves, separated by commas; * matches anything":
    "此提供商服务的模型，用逗号分隔；* 匹配任意字符",
    "Names clients may use, each NAME=MODEL: the request reaches this provider with MODEL":
    "客户端可以使用的名称，每项为 名称=模型：请求以该模型发往此提供商",
    "provider ids, e.g. openrouter, groq": "提供商 ID，例如 openrouter, groq",
    "Tried in this order when this provider fails before answering": "此提供商在应答前失败时，按此顺序依次尝试",
    "as in Settings (http://host:port, socks5://host:port, system, none)":
    "同设置页（http://主机:端口、socks5://主机:端口、system、none）",
    "E&nabled": "启用(&N)",
    "T&est": "测试(&E)",
    "Ask the provider for its model list, with one of its keys": "用它的一个密钥向提供商获取模型列表",
    "Id:": "ID：",
    "Name:": "名称：",
    "Kind:": "类型：",
    "Models:": "模型：",
    "Aliases:": "别名：",
    "Fallback:": "回退：",
    "Appl&y": "应用(&Y)",
    "No providers: KeyRelay forwards every request to the single upstream of the Settings page (%1), with the keys "
    "of the Keys page. Add a provider to route requests among several APIs by model; the first provider gets every "
    "request no other one claims.":
    "尚无提供商：KeyRelay 把每个请求转发到设置页中的唯一上游（%1），并使用密钥页中的密钥。添加提供商后即可按模型在多个 API "
    "之间路由请求；其他提供商都不接的请求发往第一个提供商。",
    'The keys of the Keys page belong to the provider "default". With none in the list they are kept, but not used.':
    "密钥页中的密钥属于提供商“default”。列表中没有它时，这些密钥会被保留，但不会被使用。",
    "Settings upstream": "设置页中的上游",
    'Keep the current upstream %1 as provider "default"?': "将当前上游 %1 保留为提供商“default”吗？",
    "Its %n key(s) stay where they are and serve it. Without it, those keys are kept but not used.":
    "它的 %n 个密钥保持原位并为它服务。不保留的话，这些密钥会被保存但不会被使用。",
    "Asking without a key…": "正在不带密钥询问…",
    "Asking with key %1…": "正在用密钥 %1 询问…",
    "Providers saved, but the proxy could not use them: %1": "提供商已保存，但代理无法使用它们：%1",
    "Applied: every request goes to the Settings page's upstream.": "已应用：所有请求都发往设置页中的上游。",
    "Providers applied.": "提供商已应用。",
    "The providers have changes that are not applied.": "提供商有尚未应用的更改。",
}


def main(path):
    tree = ET.parse(path)
    missing = []
    for message in tree.getroot().iter("message"):
        source = message.find("source").text or ""
        translation = message.find("translation")
        text = ZH.get(source)
        if text is None:
            if translation.get("type") == "unfinished" or not (translation.text or len(translation)):
                missing.append(source)  # translated earlier in Qt Linguist: kept as it is
            continue
        translation.attrib.pop("type", None)
        for child in list(translation):
            translation.remove(child)
        if message.get("numerus") == "yes":
            translation.text = None
            form = ET.SubElement(translation, "numerusform")
            form.text = text
        else:
            translation.text = text
    tree.getroot().set("language", "zh_CN")
    ET.indent(tree, space="    ")
    with open(path, "wb") as out:
        out.write(b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n')
        tree.write(out, encoding="utf-8", xml_declaration=False)
        out.write(b"\n")
    for source in missing:
        print("untranslated:", source, file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("keyrelay_zh_CN.ts"))))
