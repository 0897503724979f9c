<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
    <context>
        <name>CoreText</name>
        <message>
            <source>the upstream %1</source>
            <translation>上游 %1</translation>
        </message>
        <message>
            <source>the HTTP proxy %1</source>
            <translation>HTTP 代理 %1</translation>
        </message>
        <message>
            <source>the SOCKS5 proxy %1</source>
            <translation>SOCKS5 代理 %1</translation>
        </message>
        <message>
            <source>the network proxy</source>
            <translation>网络代理</translation>
        </message>
        <message>
            <source>%1 is not an allowed website (allow it here or under Settings › Security)</source>
            <translation>%1 不是允许的网站（可在此处或“设置 › 安全”中允许）</translation>
        </message>
        <message>
            <source>the request names more than one website (Origin); KeyRelay serves none of them</source>
            <translation>请求中包含多个网站来源（Origin）；KeyRelay 不为其中任何一个提供服务</translation>
        </message>
        <message>
            <source>a request from another website without an Origin (such as an image or script tag); KeyRelay does not serve it</source>
            <translation>来自其他网站且没有 Origin 的请求（例如图片或脚本标签）；KeyRelay 不提供服务</translation>
        </message>
        <message>
            <source>host "%1" is not this computer; KeyRelay only serves local clients (a reverse proxy's host name can be added under Settings › Security)</source>
            <translation>主机“%1”不是本机；KeyRelay 只为本机客户端服务（反向代理的主机名可在“设置 › 安全”中添加）</translation>
        </message>
        <message>
            <source>the client did not send KeyRelay's client access token as its API key</source>
            <translation>客户端没有把 KeyRelay 的客户端访问令牌作为 API 密钥发送</translation>
        </message>
        <message>
            <source>method not supported by KeyRelay</source>
            <translation>KeyRelay 不支持此方法</translation>
        </message>
        <message>
            <source>KeyRelay is shutting down</source>
            <translation>KeyRelay 正在关闭</translation>
        </message>
        <message>
            <source>KeyRelay is serving its maximum of %1 connections; retry shortly</source>
            <translation>KeyRelay 已达到最多 %1 个连接；请稍后重试</translation>
        </message>
        <message>
            <source>the client closed the connection</source>
            <translation>客户端关闭了连接</translation>
        </message>
        <message>
            <source>response cut off: %1</source>
            <translation>响应被中断：%1</translation>
        </message>
        <message>
            <source>nothing came from the upstream for %1 s</source>
            <translation>上游 %1 秒内没有发送任何数据</translation>
        </message>
        <message>
            <source>the upstream refused the key</source>
            <translation>上游拒绝了此密钥</translation>
        </message>
        <message>
            <source>the key's quota is used up</source>
            <translation>此密钥的额度已用完</translation>
        </message>
        <message>
            <source>429 rate limited</source>
            <translation>429 限流</translation>
        </message>
        <message>
            <source>works again</source>
            <translation>已恢复可用</translation>
        </message>
        <message>
            <source>re-check: %1</source>
            <translation>重新检查：%1</translation>
        </message>
        <message>
            <source>%1 refused the connection (is it running?)</source>
            <translation>%1 拒绝了连接（它在运行吗？）</translation>
        </message>
        <message>
            <source>%1 refused the connection</source>
            <translation>%1 拒绝了连接</translation>
        </message>
        <message>
            <source>%1 was not found (its host name does not resolve)</source>
            <translation>找不到 %1（无法解析其主机名）</translation>
        </message>
        <message>
            <source>%1 closed the connection before %2 answered</source>
            <translation>%1 在 %2 应答前关闭了连接</translation>
        </message>
        <message>
            <source>%1 closed the connection before answering</source>
            <translation>%1 在应答前关闭了连接</translation>
        </message>
        <message>
            <source>%1 did not answer in time</source>
            <translation>%1 未及时应答</translation>
        </message>
        <message>
            <source>%1 refused the credentials (user "%2")</source>
            <translation>%1 拒绝了凭据（用户“%2”）</translation>
        </message>
        <message>
            <source>%1 asks for credentials and none are set (give them in the upstream proxy setting: http://user:password@host:port)</source>
            <translation>%1 需要凭据，但未设置（请在上游代理设置中填写：http://user:password@host:port）</translation>
        </message>
        <message>
            <source>TLS with %1 failed: %2</source>
            <translation>与 %1 的 TLS 连接失败：%2</translation>
        </message>
        <message>
            <source>could not connect to the upstream %1 within %2 s</source>
            <translation>无法在 %2 秒内连接到上游 %1</translation>
        </message>
        <message>
            <source>the upstream sent nothing for %1 s</source>
            <translation>上游 %1 秒内没有发送任何数据</translation>
        </message>
        <message>
            <source>test: %1</source>
            <translation>测试：%1</translation>
        </message>
    </context>
    <context>
        <name>QObject</name>
        <message>
            <source>KeyRelay is not running</source>
            <translation>KeyRelay 未在运行</translation>
        </message>
        <message>
            <source>KeyRelay: key %1 stopped working</source>
            <translation>KeyRelay：密钥 %1 已失效</translation>
        </message>
        <message>
            <source>Problems found at start-up: %1</source>
            <translation>启动时发现问题：%1</translation>
        </message>
        <message>
            <source>KeyRelay already runs in the background with the settings in %1%2, as "keyrelay --headless" or the keyrelay service. Stop it first (systemctl --user stop keyrelay), then start the tray app again.</source>
            <translation>KeyRelay 已在后台使用 %1%2 中的设置运行（“keyrelay --headless”或 keyrelay 服务）。请先停止它（systemctl --user stop keyrelay），再启动托盘程序。</translation>
        </message>
        <message>
            <source>KeyRelay</source>
            <translation>KeyRelay</translation>
        </message>
        <message>
            <source>KeyRelay: key %1 works again</source>
            <translation>KeyRelay：密钥 %1 已恢复可用</translation>
        </message>
        <message>
            <source>It is back in rotation.</source>
            <translation>它已重新加入轮换。</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::ApplyBar</name>
        <message>
            <source>Unsaved changes</source>
            <translation>有未保存的更改</translation>
        </message>
        <message>
            <source>Apply stores and uses the changes; Revert drops them</source>
            <translation>“应用”会保存并使用这些更改；“还原”会丢弃它们</translation>
        </message>
        <message>
            <source>Re&amp;vert</source>
            <translation>还原(&amp;V)</translation>
        </message>
        <message>
            <source>Drop the changes not applied yet</source>
            <translation>丢弃尚未应用的更改</translation>
        </message>
        <message>
            <source>Store the changes and use them at once</source>
            <translation>保存更改并立即使用</translation>
        </message>
        <message>
            <source>KeyRelay</source>
            <translation>KeyRelay</translation>
        </message>
        <message>
            <source>Apply them now, or discard them?</source>
            <translation>现在应用，还是丢弃？</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::AutostartManager</name>
        <message>
            <source>Cannot remove %1</source>
            <translation>无法删除 %1</translation>
        </message>
        <message>
            <source>Cannot create %1</source>
            <translation>无法创建 %1</translation>
        </message>
        <message>
            <source>Cannot write %1: %2</source>
            <translation>无法写入 %1：%2</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::KeyTableModel</name>
        <message>
            <source>unknown</source>
            <translation>未知</translation>
        </message>
        <message>
            <source>ok</source>
            <translation>正常</translation>
        </message>
        <message>
            <source>testing…</source>
            <translation>测试中…</translation>
        </message>
        <message>
            <source>invalid key: %1</source>
            <translation>密钥无效：%1</translation>
        </message>
        <message>
            <source>upstream error: %1</source>
            <translation>上游错误：%1</translation>
        </message>
        <message>
            <source>never</source>
            <translation>从未</translation>
        </message>
        <message>
            <source>Label</source>
            <translation>名称</translation>
        </message>
        <message>
            <source>Key</source>
            <translation>密钥</translation>
        </message>
        <message>
            <source>Enabled</source>
            <translation>启用</translation>
        </message>
        <message>
            <source>State</source>
            <translation>状态</translation>
        </message>
        <message>
            <source>Requests</source>
            <translation>请求数</translation>
        </message>
        <message>
            <source>Errors</source>
            <translation>错误数</translation>
        </message>
        <message>
            <source>Last used</source>
            <translation>最近使用</translation>
        </message>
        <message>
            <source>Test</source>
            <translation>测试</translation>
        </message>
        <message>
            <source>Test result</source>
            <translation>测试结果</translation>
        </message>
        <message>
            <source>rate-limited until %1</source>
            <translation>限流中，直到 %1</translation>
        </message>
        <message>
            <source>quota used up</source>
            <translation>额度已用完</translation>
        </message>
        <message>
            <source>Tokens today</source>
            <translation>今日令牌</translation>
        </message>
        <message>
            <source>invalid, next check %1</source>
            <translation>无效，下次检查 %1</translation>
        </message>
        <message>
            <source>disabled</source>
            <translation>已停用</translation>
        </message>
        <message>
            <source>invalid, checking</source>
            <translation>无效，正在检查</translation>
        </message>
        <message>
            <source>KeyRelay does not use this key while it is not enabled.</source>
            <translation>此密钥未启用时，KeyRelay 不会使用它。</translation>
        </message>
        <message>
            <source>Skipped until %1 (the upstream's rate limit).</source>
            <translation>在 %1 之前跳过（上游限流）。</translation>
        </message>
        <message>
            <source>The upstream refused this key. It gets no requests; at %1 KeyRelay checks it again (a request for the model list, no tokens), or press Test.</source>
            <translation>上游拒绝了此密钥。它不会收到请求；KeyRelay 将在 %1 再次检查（请求模型列表，不消耗令牌），也可以点击“测试”。</translation>
        </message>
        <message>
            <source>The upstream refused this key. KeyRelay is checking it again.</source>
            <translation>上游拒绝了此密钥。KeyRelay 正在重新检查。</translation>
        </message>
        <message>
            <source>The key's quota is used up. It gets no requests until %1, then one trial request.</source>
            <translation>此密钥的额度已用完。在 %1 之前不会收到请求，之后会试用一次。</translation>
        </message>
        <message>
            <source>The key's quota is used up. The next request tries it once.</source>
            <translation>此密钥的额度已用完。下一个请求会试用一次。</translation>
        </message>
        <message>
            <source>Reason: %1</source>
            <translation>原因：%1</translation>
        </message>
        <message>
            <source>no answer: %1</source>
            <translation>无应答：%1</translation>
        </message>
        <message>
            <source>earlier: %1</source>
            <translation>较早：%1</translation>
        </message>
        <message>
            <source>Tested at %1.</source>
            <translation>测试于 %1。</translation>
        </message>
        <message>
            <source>The key's state has changed since this test; the State column is newer.</source>
            <translation>此次测试之后密钥状态已改变；“状态”列的信息更新。</translation>
        </message>
        <message>
            <source>The key is back in the rotation.</source>
            <translation>此密钥已重新加入轮换。</translation>
        </message>
        <message>
            <source>%1 (double-click to rename)</source>
            <translation>%1（双击重命名）</translation>
        </message>
        <message>
            <source>Double-click to name this key</source>
            <translation>双击为此密钥命名</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::KeyTester</name>
        <message>
            <source>HTTP %1</source>
            <translation>HTTP %1</translation>
        </message>
        <message>
            <source>HTTP %1: %2</source>
            <translation>HTTP %1：%2</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::KeysPage</name>
        <message>
            <source>&amp;Add keys</source>
            <translation>添加密钥(&amp;A)</translation>
        </message>
        <message>
            <source>&amp;Remove selected</source>
            <translation>删除所选(&amp;R)</translation>
        </message>
        <message>
            <source>Paste API keys here: one per line, separated by commas, or as k1|k2|k3</source>
            <translation>在此粘贴 API 密钥：每行一个、用逗号分隔，或写成 k1|k2|k3</translation>
        </message>
        <message>
            <source>Keys are stored in %1 (readable by you only), never in the settings file.</source>
            <translation>密钥保存在 %1（仅你本人可读），不会写入设置文件。</translation>
        </message>
        <message>
            <source>Keys are kept in memory only.</source>
            <translation>密钥仅保存在内存中。</translation>
        </message>
        <message>
            <source>Keys are stored in the system keychain, never in the settings file.</source>
            <translation>密钥保存在系统钥匙串中，不会写入设置文件。</translation>
        </message>
        <message>
            <source>Keys are stored in %1, readable only by you (KEYRELAY_KEYSTORE=file).</source>
            <translation>密钥保存在 %1，仅你本人可读（KEYRELAY_KEYSTORE=file）。</translation>
        </message>
        <message>
            <source>No system keychain (Secret Service) is available (%1); keys are stored in %2, readable only by you.</source>
            <translation>没有可用的系统钥匙串（Secret Service）（%1）；密钥保存在 %2，仅你本人可读。</translation>
        </message>
        <message>
            <source>The keys could not be moved into the system keychain (%1); they stay in %2, readable only by you.</source>
            <translation>无法将密钥移入系统钥匙串（%1）；密钥仍保存在 %2，仅你本人可读。</translation>
        </message>
        <message>
            <source>No keys yet. Paste your API keys above: KeyRelay then uses them in turn for every request. Until you add one, each client's own key is passed through unchanged.</source>
            <translation>还没有密钥。请在上方粘贴你的 API 密钥：KeyRelay 会在每次请求时轮流使用它们。添加密钥之前，各客户端自己的密钥会原样转发。</translation>
        </message>
        <message>
            <source>No key found in the pasted text.</source>
            <translation>粘贴的文本中没有找到密钥。</translation>
        </message>
        <message numerus="yes">
            <source>Added %n key(s).</source>
            <translation>
                <numerusform>已添加 %n 个密钥。</numerusform>
            </translation>
        </message>
        <message>
            <source>Added %1 of %2 key(s); the others were already in the list.</source>
            <translation>已添加 %2 个密钥中的 %1 个；其余的已在列表中。</translation>
        </message>
        <message numerus="yes">
            <source>Removed %n key(s).</source>
            <translation>
                <numerusform>已删除 %n 个密钥。</numerusform>
            </translation>
        </message>
        <message>
            <source>The keys could not be saved: %1</source>
            <translation>无法保存密钥：%1</translation>
        </message>
        <message>
            <source>Test</source>
            <translation>测试</translation>
        </message>
        <message>
            <source>Ask the upstream for its model list with this key</source>
            <translation>用此密钥向上游请求模型列表</translation>
        </message>
        <message>
            <source>Add the pasted keys (Ctrl+Enter)</source>
            <translation>添加粘贴的密钥（Ctrl+Enter）</translation>
        </message>
        <message numerus="yes">
            <source>Removed all %n key(s).</source>
            <translation>
                <numerusform>已删除全部 %n 个密钥。</numerusform>
            </translation>
        </message>
        <message>
            <source>&amp;Undo</source>
            <translation>撤销(&amp;U)</translation>
        </message>
        <message>
            <source>Put the removed keys back (Ctrl+Z)</source>
            <translation>恢复已删除的密钥（Ctrl+Z）</translation>
        </message>
        <message>
            <source>Undo remove</source>
            <translation>撤销删除</translation>
        </message>
        <message numerus="yes">
            <source>Put back %n key(s).</source>
            <translation>
                <numerusform>已恢复 %n 个密钥。</numerusform>
            </translation>
        </message>
        <message>
            <source>API keys to add</source>
            <translation>要添加的 API 密钥</translation>
        </message>
        <message>
            <source>Paste API keys: one per line, separated by commas, or as k1|k2|k3. Ctrl+Enter adds them.</source>
            <translation>粘贴 API 密钥：每行一个、用逗号分隔或写成 k1|k2|k3。按 Ctrl+Enter 添加。</translation>
        </message>
        <message>
            <source>API keys</source>
            <translation>API 密钥</translation>
        </message>
        <message>
            <source>Arrow keys move between keys and columns; F2 edits a label, Space switches a key on or off, Enter on the Test column tests the key.</source>
            <translation>方向键在密钥和列之间移动；F2 编辑标签，空格键启用或停用密钥，在“测试”列按 Enter 测试该密钥。</translation>
        </message>
        <message>
            <source>Test key %1</source>
            <translation>测试密钥 %1</translation>
        </message>
        <message>
            <source>Provider</source>
            <translation>提供商</translation>
        </message>
        <message>
            <source>The provider whose keys this page shows, edits and tests</source>
            <translation>本页显示、编辑和测试其密钥的提供商</translation>
        </message>
        <message>
            <source>Pro&amp;vider:</source>
            <translation>提供商(&amp;V)：</translation>
        </message>
        <message>
            <source>The keys of %1 are stored in %2 (readable by you only), never in the settings file.</source>
            <translation>%1 的密钥保存在 %2（仅你可读），从不写入设置文件。</translation>
        </message>
        <message>
            <source>The keys of %1 are kept in memory only.</source>
            <translation>%1 的密钥仅保存在内存中。</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::LogModel</name>
        <message>
            <source>%1 ms</source>
            <translation>%1 毫秒</translation>
        </message>
        <message>
            <source>yes</source>
            <translation>是</translation>
        </message>
        <message>
            <source>no</source>
            <translation>否</translation>
        </message>
        <message>
            <source>Time</source>
            <translation>时间</translation>
        </message>
        <message>
            <source>Method</source>
            <translation>方法</translation>
        </message>
        <message>
            <source>Path</source>
            <translation>路径</translation>
        </message>
        <message>
            <source>Model</source>
            <translation>模型</translation>
        </message>
        <message>
            <source>Key</source>
            <translation>密钥</translation>
        </message>
        <message>
            <source>Status</source>
            <translation>状态码</translation>
        </message>
        <message>
            <source>Latency</source>
            <translation>延迟</translation>
        </message>
        <message>
            <source>Streamed</source>
            <translation>流式</translation>
        </message>
        <message>
            <source>Bytes</source>
            <translation>字节</translation>
        </message>
        <message>
            <source>Tokens</source>
            <translation>Token 数</translation>
        </message>
        <message>
            <source>Error</source>
            <translation>错误</translation>
        </message>
        <message>
            <source>→ fallback</source>
            <translation>→ 回退</translation>
        </message>
        <message>
            <source>→ fallback: %1</source>
            <translation>→ 回退：%1</translation>
        </message>
        <message>
            <source>This try failed before any answer reached the client; the next provider was tried.</source>
            <translation>这次尝试在任何回答到达客户端之前失败；已改试下一个提供商。</translation>
        </message>
        <message>
            <source>Provider</source>
            <translation>提供商</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::LogPage</name>
        <message>
            <source>C&amp;lear</source>
            <translation>清空(&amp;L)</translation>
        </message>
        <message>
            <source>&amp;Export CSV…</source>
            <translation>导出 CSV(&amp;E)…</translation>
        </message>
        <message>
            <source>Filter: path, model, key, status, error…</source>
            <translation>筛选：路径、模型、密钥、状态码、错误…</translation>
        </message>
        <message>
            <source>All requests</source>
            <translation>全部请求</translation>
        </message>
        <message>
            <source>Errors only</source>
            <translation>仅错误</translation>
        </message>
        <message>
            <source>&amp;Copy row</source>
            <translation>复制行(&amp;C)</translation>
        </message>
        <message numerus="yes">
            <source>%n request(s) in the log (the newest %1 are kept)</source>
            <translation>
                <numerusform>日志中有 %n 条请求（保留最新的 %1 条）</numerusform>
            </translation>
        </message>
        <message>
            <source>%1 of %2 request(s) shown</source>
            <translation>显示 %2 条请求中的 %1 条</translation>
        </message>
        <message>
            <source>Export log</source>
            <translation>导出日志</translation>
        </message>
        <message>
            <source>CSV files (*.csv)</source>
            <translation>CSV 文件 (*.csv)</translation>
        </message>
        <message>
            <source>Could not write %1: %2</source>
            <translation>无法写入 %1：%2</translation>
        </message>
        <message>
            <source>&amp;Allow this website</source>
            <translation>允许此网站(&amp;A)</translation>
        </message>
        <message>
            <source>Let the website of the selected blocked request use KeyRelay</source>
            <translation>允许所选被拦截请求的网站使用 KeyRelay</translation>
        </message>
        <message>
            <source>Allow %1</source>
            <translation>允许 %1</translation>
        </message>
        <message>
            <source>&amp;Allow %1</source>
            <translation>允许 %1(&amp;A)</translation>
        </message>
        <message>
            <source>Allowing %1: its next request shows here whether it went through.</source>
            <translation>正在允许 %1：它的下一个请求会在这里显示是否通过。</translation>
        </message>
        <message>
            <source>%1 may now use KeyRelay; its next requests go through.</source>
            <translation>%1 现在可以使用 KeyRelay；它之后的请求会被放行。</translation>
        </message>
        <message numerus="yes">
            <source>%n key event(s)</source>
            <translation>
                <numerusform>%n 条密钥事件</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>keyrelay::MainWindow</name>
        <message>
            <source>KeyRelay</source>
            <translation>KeyRelay</translation>
        </message>
        <message>
            <source>&amp;Keys</source>
            <translation>密钥(&amp;K)</translation>
        </message>
        <message>
            <source>&amp;Log</source>
            <translation>日志(&amp;L)</translation>
        </message>
        <message>
            <source>&amp;Settings</source>
            <translation>设置(&amp;S)</translation>
        </message>
        <message>
            <source>&amp;Usage</source>
            <translation>用量(&amp;U)</translation>
        </message>
        <message>
            <source>&amp;Copy URL</source>
            <translation>复制地址(&amp;C)</translation>
        </message>
        <message>
            <source>Copy the endpoint URL; use it as the API base URL in your client</source>
            <translation>复制本地端点地址；在客户端中把它用作 API 基础地址</translation>
        </message>
        <message>
            <source>The keys could not be saved: %1</source>
            <translation>无法保存密钥：%1</translation>
        </message>
        <message>
            <source>Requests today: %1</source>
            <translation>今日请求：%1</translation>
        </message>
        <message>
            <source>Copied %1 to the clipboard.</source>
            <translation>已将 %1 复制到剪贴板。</translation>
        </message>
        <message>
            <source>S&amp;top</source>
            <translation>停止(&amp;T)</translation>
        </message>
        <message>
            <source>S&amp;tart</source>
            <translation>启动(&amp;T)</translation>
        </message>
        <message>
            <source>Could not allow %1: %2</source>
            <translation>无法允许 %1：%2</translation>
        </message>
        <message>
            <source>stopped working</source>
            <translation>已停止工作</translation>
        </message>
        <message>
            <source>works again</source>
            <translation>已恢复可用</translation>
        </message>
        <message>
            <source>Requests sent upstream with one of your keys today, as on the Usage page</source>
            <translation>今天用你的密钥发往上游的请求数，与“用量”页相同</translation>
        </message>
        <message>
            <source>Close window</source>
            <translation>关闭窗口</translation>
        </message>
        <message>
            <source>Quit KeyRelay</source>
            <translation>退出 KeyRelay</translation>
        </message>
        <message>
            <source>Filter the log</source>
            <translation>筛选日志</translation>
        </message>
        <message>
            <source>&amp;Providers</source>
            <translation>提供商(&amp;P)</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::ModelListProbe</name>
        <message>
            <source>The model list is larger than %1 MB.</source>
            <translation>模型列表超过 %1 MB。</translation>
        </message>
        <message>
            <source>HTTP %1</source>
            <translation>HTTP %1</translation>
        </message>
        <message>
            <source>HTTP %1: %2</source>
            <translation>HTTP %1：%2</translation>
        </message>
        <message>
            <source>HTTP %1, but the answer is not a model list.</source>
            <translation>HTTP %1，但回答不是模型列表。</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::NoticeBanner</name>
        <message>
            <source>Dismiss</source>
            <translation>关闭</translation>
        </message>
        <message>
            <source>Dismiss: %1</source>
            <translation>关闭：%1</translation>
        </message>
        <message>
            <source>(empty)</source>
            <translation>（空）</translation>
        </message>
        <message>
            <source>• Line %1: %2 = "%3" is not valid%4; KeyRelay uses %5 instead.</source>
            <translation>• 第 %1 行：%2 = “%3” 无效%4；KeyRelay 改用 %5。</translation>
        </message>
        <message>
            <source>• %1 = "%2" is not valid%3; KeyRelay uses %4 instead.</source>
            <translation>• %1 = “%2” 无效%3；KeyRelay 改用 %4。</translation>
        </message>
        <message>
            <source>The file as it was is kept in %1. Correct the values on the Settings page or in the file.</source>
            <translation>原文件已保留为 %1。请在“设置”页或文件中更正这些值。</translation>
        </message>
        <message>
            <source>There are problems with the settings file %1:</source>
            <translation>设置文件 %1 有问题：</translation>
        </message>
        <message numerus="yes">
            <source>%n setting(s) in %1 could not be used and were ignored:</source>
            <translation>
                <numerusform>%1 中有 %n 项设置无法使用，已被忽略：</numerusform>
            </translation>
        </message>
    </context>
    <context>
        <name>keyrelay::ProvidersModel</name>
        <message>
            <source>off</source>
            <translation>已停用</translation>
        </message>
        <message>
            <source>The default: requests no other provider claims go here.</source>
            <translation>默认提供商：其他提供商都不接的请求发到这里。</translation>
        </message>
        <message>
            <source>Enter the base URL.</source>
            <translation>请输入基础 URL。</translation>
        </message>
        <message>
            <source>Base URL: %1</source>
            <translation>基础 URL：%1</translation>
        </message>
        <message>
            <source>Aliases: each entry is NAME=MODEL, each name once (%1).</source>
            <translation>别名：每项写作 名称=模型，每个名称只能出现一次（%1）。</translation>
        </message>
        <message>
            <source>Network proxy: %1</source>
            <translation>网络代理：%1</translation>
        </message>
        <message>
            <source>The id must be 1 to 40 of a-z, 0-9, _ and -, starting with a letter or digit (not "p").</source>
            <translation>ID 须为 1 到 40 个 a-z、0-9、_ 和 - 字符，以字母或数字开头（不能是“p”）。</translation>
        </message>
        <message>
            <source>Another provider has the id "%1".</source>
            <translation>另一个提供商已使用 ID“%1”。</translation>
        </message>
        <message>
            <source>A provider cannot fall back to itself.</source>
            <translation>提供商不能回退到自身。</translation>
        </message>
        <message>
            <source>Fallback "%1" is not a provider in the list.</source>
            <translation>回退目标“%1”不在提供商列表中。</translation>
        </message>
        <message>
            <source>provider %1</source>
            <translation>提供商 %1</translation>
        </message>
        <message>
            <source>default route</source>
            <translation>默认路由</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::ProvidersPage</name>
        <message>
            <source>Failed: %1</source>
            <translation>失败：%1</translation>
        </message>
        <message>
            <source>It answers, with no models listed.</source>
            <translation>有应答，但没有列出任何模型。</translation>
        </message>
        <message numerus="yes">
            <source>%n model(s): %1</source>
            <translation>
                <numerusform>%n 个模型：%1</numerusform>
            </translation>
        </message>
        <message>
            <source>Providers in routing order</source>
            <translation>按路由顺序排列的提供商</translation>
        </message>
        <message>
            <source>Requests go to the first provider whose models, aliases or id match; the first one gets everything else.</source>
            <translation>请求发往模型、别名或 ID 匹配的第一个提供商；其余请求都发往列表中的第一个。</translation>
        </message>
        <message>
            <source>&amp;Add</source>
            <translation>添加(&amp;A)</translation>
        </message>
        <message>
            <source>Custom OpenAI-compatible</source>
            <translation>自定义（OpenAI 兼容）</translation>
        </message>
        <message>
            <source>Custom</source>
            <translation>自定义</translation>
        </message>
        <message>
            <source>&amp;Remove</source>
            <translation>移除(&amp;R)</translation>
        </message>
        <message>
            <source>Move &amp;up</source>
            <translation>上移(&amp;U)</translation>
        </message>
        <message>
            <source>Move do&amp;wn</source>
            <translation>下移(&amp;W)</translation>
        </message>
        <message>
            <source>Earlier in the routing order; the first provider is the default</source>
            <translation>在路由顺序中靠前；第一个提供商是默认提供商</translation>
        </message>
        <message>
            <source>Later in the routing order</source>
            <translation>在路由顺序中靠后</translation>
        </message>
        <message>
            <source>Carry &amp;over the current upstream as provider "default"</source>
            <translation>将当前上游沿用为提供商“default”(&amp;O)</translation>
        </message>
        <message>
            <source>Its keys stay where they are (the Keys page) and serve it</source>
            <translation>它的密钥保持原位（密钥页）并为它服务</translation>
        </message>
        <message>
            <source>Provider</source>
            <translation>提供商</translation>
        </message>
        <message>
            <source>a-z, 0-9, _ and -; clients can name it as "&lt;id&gt;/&lt;model&gt;" or use /p/&lt;id&gt;/</source>
            <translation>a-z、0-9、_ 和 -；客户端可写作“&lt;id&gt;/&lt;模型&gt;”或使用 /p/&lt;id&gt;/</translation>
        </message>
        <message>
            <source>OpenAI-compatible</source>
            <translation>OpenAI 兼容</translation>
        </message>
        <message>
            <source>Anthropic</source>
            <translation>Anthropic</translation>
        </message>
        <message>
            <source>e.g. gpt-4o*, o3-mini (patterns with *)</source>
            <translation>例如 gpt-4o*, o3-mini（可用 * 通配）</translation>
        </message>
        <message>
            <source>The models this provider serves, separated by commas; * matches anything</source>
            <translation>此提供商服务的模型，用逗号分隔；* 匹配任意字符</translation>
        </message>
        <message>
            <source>Names clients may use, each NAME=MODEL: the request reaches this provider with MODEL</source>
            <translation>客户端可以使用的名称，每项为 名称=模型：请求以该模型发往此提供商</translation>
        </message>
        <message>
            <source>provider ids, e.g. openrouter, groq</source>
            <translation>提供商 ID，例如 openrouter, groq</translation>
        </message>
        <message>
            <source>Tried in this order when this provider fails before answering</source>
            <translation>此提供商在应答前失败时，按此顺序依次尝试</translation>
        </message>
        <message>
            <source>as in Settings (http://host:port, socks5://host:port, system, none)</source>
            <translation>同设置页（http://主机:端口、socks5://主机:端口、system、none）</translation>
        </message>
        <message>
            <source>E&amp;nabled</source>
            <translation>启用(&amp;N)</translation>
        </message>
        <message>
            <source>T&amp;est</source>
            <translation>测试(&amp;E)</translation>
        </message>
        <message>
            <source>Ask the provider for its model list, with one of its keys</source>
            <translation>用它的一个密钥向提供商获取模型列表</translation>
        </message>
        <message>
            <source>Id:</source>
            <translation>ID：</translation>
        </message>
        <message>
            <source>Name:</source>
            <translation>名称：</translation>
        </message>
        <message>
            <source>Kind:</source>
            <translation>类型：</translation>
        </message>
        <message>
            <source>Base URL:</source>
            <translation>基础地址：</translation>
        </message>
        <message>
            <source>Models:</source>
            <translation>模型：</translation>
        </message>
        <message>
            <source>Aliases:</source>
            <translation>别名：</translation>
        </message>
        <message>
            <source>Fallback:</source>
            <translation>回退：</translation>
        </message>
        <message>
            <source>Network proxy:</source>
            <translation>网络代理：</translation>
        </message>
        <message>
            <source>Appl&amp;y</source>
            <translation>应用(&amp;Y)</translation>
        </message>
        <message>
            <source>No providers: KeyRelay forwards every request to the single upstream of the Settings page (%1), with the keys of the Keys page. Add a provider to route requests among several APIs by model; the first provider gets every request no other one claims.</source>
            <translation>尚无提供商：KeyRelay 把每个请求转发到设置页中的唯一上游（%1），并使用密钥页中的密钥。添加提供商后即可按模型在多个 API 之间路由请求；其他提供商都不接的请求发往第一个提供商。</translation>
        </message>
        <message>
            <source>The keys of the Keys page belong to the provider "default". With none in the list they are kept, but not used.</source>
            <translation>密钥页中的密钥属于提供商“default”。列表中没有它时，这些密钥会被保留，但不会被使用。</translation>
        </message>
        <message>
            <source>Settings upstream</source>
            <translation>设置页中的上游</translation>
        </message>
        <message>
            <source>KeyRelay</source>
            <translation>KeyRelay</translation>
        </message>
        <message>
            <source>Keep the current upstream %1 as provider "default"?</source>
            <translation>将当前上游 %1 保留为提供商“default”吗？</translation>
        </message>
        <message numerus="yes">
            <source>Its %n key(s) stay where they are and serve it. Without it, those keys are kept but not used.</source>
            <translation>
                <numerusform>它的 %n 个密钥保持原位并为它服务。不保留的话，这些密钥会被保存但不会被使用。</numerusform>
            </translation>
        </message>
        <message>
            <source>Base URL: %1</source>
            <translation>基础 URL：%1</translation>
        </message>
        <message>
            <source>Asking without a key…</source>
            <translation>正在不带密钥询问…</translation>
        </message>
        <message>
            <source>Asking with key %1…</source>
            <translation>正在用密钥 %1 询问…</translation>
        </message>
        <message>
            <source>Not applied: %1</source>
            <translation>未应用：%1</translation>
        </message>
        <message>
            <source>The settings file %1 could not be written.</source>
            <translation>无法写入设置文件 %1。</translation>
        </message>
        <message>
            <source>Providers saved, but the proxy could not use them: %1</source>
            <translation>提供商已保存，但代理无法使用它们：%1</translation>
        </message>
        <message>
            <source>Applied: every request goes to the Settings page's upstream.</source>
            <translation>已应用：所有请求都发往设置页中的上游。</translation>
        </message>
        <message>
            <source>Providers applied.</source>
            <translation>提供商已应用。</translation>
        </message>
        <message>
            <source>The providers have changes that are not applied.</source>
            <translation>提供商有尚未应用的更改。</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::ServiceStatus</name>
        <message>
            <source>● Running</source>
            <translation>● 运行中</translation>
        </message>
        <message>
            <source>● Running, with problems</source>
            <translation>● 运行中，但有问题</translation>
        </message>
        <message>
            <source>● Stopped</source>
            <translation>● 已停止</translation>
        </message>
        <message>
            <source>● Not running</source>
            <translation>● 未运行</translation>
        </message>
        <message>
            <source>The proxy is stopped; clients get "connection refused".</source>
            <translation>代理已停止；客户端会收到“连接被拒绝”。</translation>
        </message>
        <message>
            <source>The proxy could not start: %1</source>
            <translation>代理无法启动：%1</translation>
        </message>
        <message>
            <source>HTTP %1</source>
            <translation>HTTP %1</translation>
        </message>
        <message>
            <source>The upstream is failing: %1 of the last %2 requests failed (latest: %3).</source>
            <translation>上游出现故障：最近 %2 个请求中有 %1 个失败（最近一次：%3）。</translation>
        </message>
        <message>
            <source>No key is enabled: KeyRelay refuses every request. Enable a key on the Keys page.</source>
            <translation>没有启用的密钥：KeyRelay 会拒绝所有请求。请在“密钥”页启用一个密钥。</translation>
        </message>
        <message>
            <source>%1 of %2 enabled keys cannot be used now (invalid, quota used up or rate-limited); see the Keys page.</source>
            <translation>%2 个已启用的密钥中有 %1 个当前无法使用（无效、额度已用完或被限流）；请查看“密钥”页。</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::SettingsPage</name>
        <message>
            <source>Local endpoint</source>
            <translation>本地端点</translation>
        </message>
        <message>
            <source>127.0.0.1 keeps the proxy reachable from this computer only</source>
            <translation>127.0.0.1 表示只有本机可以访问代理</translation>
        </message>
        <message>
            <source>any free port</source>
            <translation>任意空闲端口</translation>
        </message>
        <message>
            <source>Port:</source>
            <translation>端口：</translation>
        </message>
        <message>
            <source>Listen address:</source>
            <translation>监听地址：</translation>
        </message>
        <message>
            <source>Upstream</source>
            <translation>上游</translation>
        </message>
        <message>
            <source>No proxy</source>
            <translation>不使用代理</translation>
        </message>
        <message>
            <source>System proxy settings</source>
            <translation>使用系统代理设置</translation>
        </message>
        <message>
            <source>HTTP proxy</source>
            <translation>HTTP 代理</translation>
        </message>
        <message>
            <source>SOCKS5 proxy</source>
            <translation>SOCKS5 代理</translation>
        </message>
        <message>
            <source>host</source>
            <translation>主机</translation>
        </message>
        <message>
            <source>user (optional)</source>
            <translation>用户名（可选）</translation>
        </message>
        <message>
            <source>password (optional)</source>
            <translation>密码（可选）</translation>
        </message>
        <message>
            <source>e.g. /release, /openai</source>
            <translation>例如 /release, /openai</translation>
        </message>
        <message>
            <source> s</source>
            <translation> 秒</translation>
        </message>
        <message>
            <source>Connect:</source>
            <translation>连接：</translation>
        </message>
        <message>
            <source>Idle:</source>
            <translation>空闲：</translation>
        </message>
        <message>
            <source>Base URL:</source>
            <translation>基础地址：</translation>
        </message>
        <message>
            <source>Network proxy:</source>
            <translation>网络代理：</translation>
        </message>
        <message>
            <source>Strip path prefixes:</source>
            <translation>去除路径前缀：</translation>
        </message>
        <message>
            <source>Timeouts:</source>
            <translation>超时：</translation>
        </message>
        <message>
            <source>Long conversations</source>
            <translation>长对话</translation>
        </message>
        <message>
            <source>Move the system message close to the end of long conversations</source>
            <translation>在长对话中把系统消息移到靠近末尾的位置</translation>
        </message>
        <message>
            <source>When there are more than</source>
            <translation>当消息数多于</translation>
        </message>
        <message>
            <source>messages, keep</source>
            <translation>条时，让它后面保留</translation>
        </message>
        <message>
            <source>messages after it</source>
            <translation>条消息</translation>
        </message>
        <message>
            <source>Note: moving the system message defeats the upstream's prompt caching of long conversations.</source>
            <translation>注意：移动系统消息会使上游对长对话的提示词缓存失效。</translation>
        </message>
        <message>
            <source>Before:</source>
            <translation>调整前：</translation>
        </message>
        <message>
            <source>After:</source>
            <translation>调整后：</translation>
        </message>
        <message>
            <source>Desktop</source>
            <translation>桌面</translation>
        </message>
        <message>
            <source>Start minimized to the tray</source>
            <translation>启动时最小化到托盘</translation>
        </message>
        <message>
            <source>Start KeyRelay when I log in</source>
            <translation>登录时启动 KeyRelay</translation>
        </message>
        <message>
            <source>&amp;Apply</source>
            <translation>应用(&amp;A)</translation>
        </message>
        <message>
            <source>Upstream base URL: %1</source>
            <translation>上游基础地址：%1</translation>
        </message>
        <message>
            <source>Enter the network proxy's host name.</source>
            <translation>请输入网络代理的主机名。</translation>
        </message>
        <message>
            <source>The settings file %1 could not be written.</source>
            <translation>无法写入设置文件 %1。</translation>
        </message>
        <message>
            <source>Settings saved, but the proxy could not start: %1</source>
            <translation>设置已保存，但代理无法启动：%1</translation>
        </message>
        <message>
            <source>Settings applied.</source>
            <translation>设置已应用。</translation>
        </message>
        <message>
            <source>The proxy password could not be stored (%1); it is used until KeyRelay quits.</source>
            <translation>无法保存代理密码（%1）；在 KeyRelay 退出前仍会使用它。</translation>
        </message>
        <message>
            <source>%1 (unchanged)</source>
            <translation>%1（未改变）</translation>
        </message>
        <message>
            <source>Security</source>
            <translation>安全</translation>
        </message>
        <message>
            <source>Websites (origins) that may use KeyRelay from your browser, separated by commas. Pages on this computer (localhost), browser extensions and desktop apps are always allowed.</source>
            <translation>可以在浏览器中使用 KeyRelay 的网站（来源），用逗号分隔。本机页面（localhost）、浏览器扩展和桌面应用始终允许。</translation>
        </message>
        <message>
            <source>Pages on this computer (localhost), browser extensions and desktop apps are always allowed. A blocked website shows in the log, where one click allows it.</source>
            <translation>本机页面（localhost）、浏览器扩展和桌面应用始终允许。被拦截的网站会显示在日志中，点击一下即可允许。</translation>
        </message>
        <message>
            <source>Allow any website (not recommended)</source>
            <translation>允许任何网站（不推荐）</translation>
        </message>
        <message>
            <source>Warning: every website open in your browser could then use your API keys and spend your money.</source>
            <translation>警告：这样浏览器中打开的任何网站都能使用你的 API 密钥并花费你的钱。</translation>
        </message>
        <message>
            <source>none: any program on this computer may use KeyRelay</source>
            <translation>无：本机任何程序都可以使用 KeyRelay</translation>
        </message>
        <message>
            <source>When set, clients must send this token as their API key. Required for listening on a network address or behind a reverse proxy.</source>
            <translation>设置后，客户端必须把此令牌作为 API 密钥发送。在网络地址上监听或位于反向代理之后时必须设置。</translation>
        </message>
        <message>
            <source>&amp;Generate</source>
            <translation>生成(&amp;G)</translation>
        </message>
        <message>
            <source>Cop&amp;y</source>
            <translation>复制(&amp;Y)</translation>
        </message>
        <message>
            <source>Host names a reverse proxy sends (besides localhost); needs a client token.</source>
            <translation>反向代理发送的主机名（localhost 以外）；需要客户端令牌。</translation>
        </message>
        <message>
            <source>Allowed websites:</source>
            <translation>允许的网站：</translation>
        </message>
        <message>
            <source>Client access token:</source>
            <translation>客户端访问令牌：</translation>
        </message>
        <message>
            <source>Reverse-proxy host names:</source>
            <translation>反向代理主机名：</translation>
        </message>
        <message>
            <source>The client access token must be at least 16 characters without spaces (use Generate).</source>
            <translation>客户端访问令牌至少需要 16 个字符且不含空格（可使用“生成”）。</translation>
        </message>
        <message>
            <source>"%1" is not a website origin.</source>
            <translation>“%1”不是网站来源。</translation>
        </message>
        <message>
            <source>%1 may now use KeyRelay.</source>
            <translation>%1 现在可以使用 KeyRelay。</translation>
        </message>
        <message>
            <source>Keys and usage</source>
            <translation>密钥与用量</translation>
        </message>
        <message>
            <source>no limit</source>
            <translation>不限</translation>
        </message>
        <message>
            <source>Count the tokens of streamed answers (asks the upstream for them; the client's stream stays as it asked)</source>
            <translation>统计流式回答的令牌数（向上游请求用量；客户端收到的流保持原样）</translation>
        </message>
        <message>
            <source>Re-check an invalid key every:</source>
            <translation>无效密钥的重新检查间隔：</translation>
        </message>
        <message>
            <source>Requests per key at once:</source>
            <translation>每个密钥的同时请求数：</translation>
        </message>
        <message>
            <source>Listen address</source>
            <translation>监听地址</translation>
        </message>
        <message>
            <source>Listen port</source>
            <translation>监听端口</translation>
        </message>
        <message>
            <source>Network proxy</source>
            <translation>网络代理</translation>
        </message>
        <message>
            <source>Network proxy host</source>
            <translation>网络代理主机</translation>
        </message>
        <message>
            <source>Network proxy port</source>
            <translation>网络代理端口</translation>
        </message>
        <message>
            <source>Network proxy user</source>
            <translation>网络代理用户名</translation>
        </message>
        <message>
            <source>Network proxy password</source>
            <translation>网络代理密码</translation>
        </message>
        <message>
            <source>Connect timeout</source>
            <translation>连接超时</translation>
        </message>
        <message>
            <source>Idle timeout</source>
            <translation>空闲超时</translation>
        </message>
        <message>
            <source>Move the system message when there are more messages than</source>
            <translation>消息数超过此值时移动系统消息</translation>
        </message>
        <message>
            <source>Messages to keep after the system message</source>
            <translation>系统消息之后保留的消息数</translation>
        </message>
        <message>
            <source>Client access token</source>
            <translation>客户端访问令牌</translation>
        </message>
        <message>
            <source>The settings have changes that are not applied.</source>
            <translation>设置有尚未应用的更改。</translation>
        </message>
        <message>
            <source>Not applied: %1</source>
            <translation>未应用：%1</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::StorageWarnings</name>
        <message>
            <source>The system keychain could not store the keys (%1), so they are stored in %2 instead, readable only by you.</source>
            <translation>系统钥匙串无法保存密钥（%1），因此密钥改存于 %2，仅你本人可读。</translation>
        </message>
        <message>
            <source>KeyRelay: keys saved in a file</source>
            <translation>KeyRelay：密钥已保存到文件</translation>
        </message>
        <message>
            <source>The system keychain could not store your keys, so KeyRelay saved them in %1 (readable only by you). They are kept after a restart. The keychain said: %2</source>
            <translation>系统钥匙串无法保存你的密钥，因此 KeyRelay 已将其保存到 %1（仅你本人可读）。重启后密钥仍在。钥匙串的回复：%2</translation>
        </message>
        <message>
            <source>KeyRelay: proxy password saved in a file</source>
            <translation>KeyRelay：代理密码已保存到文件</translation>
        </message>
        <message>
            <source>The system keychain could not store the upstream proxy password, so KeyRelay saved it in %1 (readable only by you). The keychain said: %2</source>
            <translation>系统钥匙串无法保存上游代理密码，因此 KeyRelay 已将其保存到 %1（仅你本人可读）。钥匙串的回复：%2</translation>
        </message>
        <message>
            <source>Your keys are not saved: they are in memory only and will be lost when KeyRelay quits.</source>
            <translation>你的密钥尚未保存：它们只在内存中，KeyRelay 退出时将会丢失。</translation>
        </message>
        <message>
            <source>KeyRelay tries again at every change of the key list.</source>
            <translation>密钥列表每次变化时，KeyRelay 都会重试保存。</translation>
        </message>
        <message>
            <source>The keys are in memory only and will be lost when KeyRelay quits (%1).</source>
            <translation>密钥只在内存中，KeyRelay 退出时将会丢失（%1）。</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::TrayIcon</name>
        <message>
            <source>Open KeyRelay</source>
            <translation>打开 KeyRelay</translation>
        </message>
        <message>
            <source>Start proxy</source>
            <translation>启动代理</translation>
        </message>
        <message>
            <source>Copy endpoint URL</source>
            <translation>复制端点地址</translation>
        </message>
        <message>
            <source>Quit KeyRelay</source>
            <translation>退出 KeyRelay</translation>
        </message>
        <message>
            <source>Stop proxy</source>
            <translation>停止代理</translation>
        </message>
        <message>
            <source>KeyRelay: running on %1</source>
            <translation>KeyRelay：运行于 %1</translation>
        </message>
        <message>
            <source>KeyRelay: stopped</source>
            <translation>KeyRelay：已停止</translation>
        </message>
        <message numerus="yes">
            <source>%n request(s) today</source>
            <translation>
                <numerusform>今日 %n 条请求</numerusform>
            </translation>
        </message>
        <message>
            <source>KeyRelay: running on %1, with problems</source>
            <translation>KeyRelay：运行于 %1，但有问题</translation>
        </message>
        <message>
            <source>KeyRelay: not running</source>
            <translation>KeyRelay：未运行</translation>
        </message>
    </context>
    <context>
        <name>keyrelay::UsagePage</name>
        <message>
            <source>Key</source>
            <translation>密钥</translation>
        </message>
        <message>
            <source>Model</source>
            <translation>模型</translation>
        </message>
        <message>
            <source>St&amp;ack by:</source>
            <translation>堆叠方式(&amp;A)：</translation>
        </message>
        <message>
            <source>&amp;Refresh</source>
            <translation>刷新(&amp;R)</translation>
        </message>
        <message>
            <source>Read the usage figures again (they also update by themselves)</source>
            <translation>重新读取用量数据（数据也会自动更新）</translation>
        </message>
        <message>
            <source>&amp;Export CSV…</source>
            <translation>导出 CSV(&amp;E)…</translation>
        </message>
        <message>
            <source>Tokens</source>
            <translation>Token 数</translation>
        </message>
        <message>
            <source>%1 on %2: %3 tokens</source>
            <translation>%1，%2：%3 个 token</translation>
        </message>
        <message>
            <source>Other</source>
            <translation>其他</translation>
        </message>
        <message>
            <source>No tokens used in the last %1 days</source>
            <translation>最近 %1 天没有使用 token</translation>
        </message>
        <message>
            <source>Tokens per day, last %1 days</source>
            <translation>每日 token 用量（最近 %1 天）</translation>
        </message>
        <message>
            <source>Day</source>
            <translation>日期</translation>
        </message>
        <message>
            <source>Requests</source>
            <translation>请求数</translation>
        </message>
        <message>
            <source>Prompt tokens</source>
            <translation>提示 token</translation>
        </message>
        <message>
            <source>Completion tokens</source>
            <translation>补全 token</translation>
        </message>
        <message>
            <source>Total tokens</source>
            <translation>总 token</translation>
        </message>
        <message>
            <source>Tokens today: %1 (requests: %2)</source>
            <translation>今日 token：%1（请求：%2）</translation>
        </message>
        <message>
            <source>Tokens since %1: %2</source>
            <translation>自 %1 起的 token：%2</translation>
        </message>
        <message>
            <source>(no model)</source>
            <translation>（无模型）</translation>
        </message>
        <message>
            <source>(no key)</source>
            <translation>（无密钥）</translation>
        </message>
        <message>
            <source>Export usage</source>
            <translation>导出用量</translation>
        </message>
        <message>
            <source>CSV files (*.csv)</source>
            <translation>CSV 文件 (*.csv)</translation>
        </message>
        <message>
            <source>Could not write %1: %2</source>
            <translation>无法写入 %1：%2</translation>
        </message>
        <message>
            <source>Provider</source>
            <translation>提供商</translation>
        </message>
        <message>
            <source>Key id %1, provider %2</source>
            <translation>密钥 ID %1，提供商 %2</translation>
        </message>
    </context>
</TS>
