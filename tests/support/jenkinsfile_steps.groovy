// Parse Jenkinsfiles as Groovy, syntax only (no Jenkins, no pipeline plugins), and print their shapes as
// one JSON document, by path: each file's top-level statements and its functions, each a list of nodes in
// source order. A node is a call ({type: call, name, object, named, args, body}), a try, an if, a for, an
// assignment or a plain expression; a value carries its source text, the variables it reads (`vars`,
// and `env`/`params` for env.X/params.X) and, when it is a literal, `const`. A syntax error exits non-zero
// with Groovy's message.
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.*
import org.codehaus.groovy.ast.stmt.*
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

Map value(Expression expr) {
    def vars = [] as LinkedHashSet, envs = [] as LinkedHashSet, params = [] as LinkedHashSet
    def scope = [env: envs, params: params]
    expr.visit(new CodeVisitorSupport() {
        void visitVariableExpression(VariableExpression v) { vars << v.name }
        void visitPropertyExpression(PropertyExpression p) {
            def owner = p.objectExpression
            if (owner instanceof VariableExpression && scope.containsKey(owner.name)) {
                scope[owner.name] << p.propertyAsString
            }
            super.visitPropertyExpression(p)
        }
    })
    def out = [text: expr.text, vars: vars as List, env: envs as List, params: params as List]
    if (expr instanceof ConstantExpression) {
        out.const = expr.value
        out.literal = true
    } else if (expr instanceof ClosureExpression) {
        out.closure = nodes(expr.code)
    } else if (expr instanceof MapExpression) {
        out.map = expr.mapEntryExpressions.collectEntries { [(it.keyExpression.text): value(it.valueExpression)] }
    } else if (expr instanceof ListExpression) {
        out.list = expr.expressions.collect { value(it) }
    }
    return out
}

Map call(MethodCallExpression c) {
    def arguments = c.arguments instanceof TupleExpression ? c.arguments.expressions : [c.arguments]
    def named = [:], positional = [], body = null
    arguments.each { arg ->
        if (arg instanceof MapExpression) {
            arg.mapEntryExpressions.each { named[it.keyExpression.text] = value(it.valueExpression) }
        } else if (arg instanceof ClosureExpression) {
            body = nodes(arg.code)
        } else {
            positional << value(arg)
        }
    }
    return [type: 'call', name: c.methodAsString, line: c.lineNumber, object: c.implicitThis ? null : value(c.objectExpression),
            named: named, args: positional, body: body]
}

List nodes(Statement statement) {
    if (statement == null || statement instanceof EmptyStatement) return []
    if (statement instanceof BlockStatement) return statement.statements.collectMany { nodes(it) }
    if (statement instanceof ExpressionStatement) return [expression(statement.expression)]
    if (statement instanceof ReturnStatement) return [[type: 'return', value: value(statement.expression)]]
    if (statement instanceof TryCatchStatement) {
        return [[type: 'try', body: nodes(statement.tryStatement), catches: statement.catchStatements.collectMany { nodes(it.code) },
                 finally: nodes(statement.finallyStatement)]]
    }
    if (statement instanceof IfStatement) {
        return [[type: 'if', cond: value(statement.booleanExpression), then: nodes(statement.ifBlock), else: nodes(statement.elseBlock)]]
    }
    if (statement instanceof ForStatement) {
        return [[type: 'for', var: statement.variable.name, collection: value(statement.collectionExpression), body: nodes(statement.loopBlock)]]
    }
    return [[type: 'statement', text: statement.text]]
}

Map expression(Expression expr) {
    if (expr instanceof MethodCallExpression) return call(expr)
    if (expr instanceof BinaryExpression && expr.operation.text == '=') {
        def target = expr instanceof DeclarationExpression ? expr.leftExpression.text : expr.leftExpression.text
        return [type: 'assign', name: target, value: value(expr.rightExpression)]
    }
    return [type: 'expr', value: value(expr)]
}

Map shape(String path) {
    def unit = new CompilationUnit()
    unit.addSource(new File(path))
    unit.compile(Phases.CONVERSION)
    def script = unit.AST.modules*.classes.flatten().find { it.isScript() }
    def functions = script.methods.findAll { !(it.name in ['main', 'run']) }.collectEntries { m ->
        [(m.name): [params: m.parameters*.name, body: nodes(m.code)]]
    }
    return [script: nodes(script.methods.find { it.name == 'run' }.code), functions: functions]
}

println JsonOutput.toJson(args.collectEntries { [(it): shape(it)] })
